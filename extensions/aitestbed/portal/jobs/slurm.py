"""The Slurm backend: slurmrestd (OpenAPI v0.0.38) with short-lived JWTs per user.

Each call carries a token the portal mints for the Unix user it acts for (HS256 with the
key slurmctld's auth/jwt uses), so Slurm itself runs the job as that user and refuses what
that user may not do. The key is read from its file and never logged or shown.

Jobs that have left slurmctld (after MinJobAge) are looked up in slurmdbd (when slurmrestd
serves it) or in the job-completion file (``JobCompType=jobcomp/filetxt``).
"""

from __future__ import annotations

import logging
import pwd
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import requests
import urllib3

from aitestbed.portal.jobs.backend import (
    BackendRejected,
    BackendUnavailable,
    Observation,
    Submission,
    SubmissionUncertain,
)
from aitestbed.portal.jobs.script import gres
from aitestbed.portal.jobs.states import JobState, from_slurm, split_exit_code
from aitestbed.settings import SlurmSettings

log = logging.getLogger("aitestbed.portal.jobs")

COMMENT_PREFIX = "aitestbed:"  # + the portal's uid of the job: Slurm is the witness
INVALID_JOB_ID = 2017
ACCESS_DENIED = 2002
# slurmrestd could not connect to slurmctld: the request surely never reached it.
CONTROLLER_NOT_REACHED = frozenset({1001, 1800, 1804})
# sent (or maybe sent) to slurmctld, but its answer never came: it may have acted.
CONTROLLER_ANSWER_LOST = frozenset({1000, 1002, 1003, 1004, 1801, 1802, 1803, 5004, 5005})
UNSPECIFIED = frozenset({-1, 0, None})
CONTROLLER_DOWN = (
    "The batch system's controller (slurmctld) cannot be reached right now and nothing was "
    "changed; try again in a few minutes (retry a submission with the same idempotency key)."
)
UNAVAILABLE = (
    "The batch system (slurmrestd) cannot be reached right now; nothing was submitted. "
    "Try again in a few minutes (retry with the same idempotency key)."
)

UNCERTAIN = (
    "The batch system did not confirm the submission (no answer in time); the portal keeps "
    "the job and checks whether Slurm received it: retry with the same idempotency key or "
    "look at your job list instead of submitting it again."
)


def may_have_been_sent(error: requests.RequestException) -> bool:
    """Whether a failed request may have reached slurmrestd: only a connection that was
    never made (refused, connect timeout, TLS handshake) proves that nothing was sent."""
    if isinstance(error, requests.ConnectTimeout | requests.exceptions.SSLError):
        return False
    if isinstance(error, requests.ConnectionError):
        reason = getattr(error.args[0], "reason", None) if error.args else None
        return not isinstance(reason, urllib3.exceptions.NewConnectionError)
    return not isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema)


def mint_token(key: bytes, user: str, lifetime_seconds: int, now: float | None = None) -> str:
    """A JWT slurmctld's auth/jwt accepts for ``user`` (claims ``sun``, ``iat``, ``exp``)."""
    issued = int(now if now is not None else time.time())
    claims = {"sun": user, "iat": issued, "exp": issued + lifetime_seconds}
    return jwt.encode(claims, key, algorithm="HS256")


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, dict):  # newer plugins: {"set": true, "number": N}
        value = value.get("number") if value.get("set", True) else None
    if not value:
        return None
    return datetime.fromtimestamp(int(value), UTC)


def _exit_code(value: Any) -> int | None:
    """v0.0.38 gives the raw wait status (exit 3 is 768); newer plugins a dict."""
    if isinstance(value, dict):
        return value.get("return_code")
    if not isinstance(value, int):
        return None
    signal = value & 0x7F
    return 128 + signal if signal else (value >> 8) & 0xFF


def observation_from_rest(job: dict[str, Any]) -> Observation:
    """One entry of ``GET /slurm/v0.0.38/jobs`` as an observation."""
    state = from_slurm(str(job.get("job_state", "")))
    final = not state.active
    comment = str(job.get("comment") or "")
    return Observation(
        uid=comment.removeprefix(COMMENT_PREFIX) if comment.startswith(COMMENT_PREFIX) else "",
        state=state,
        exit_code=_exit_code(job.get("exit_code")) if final else None,
        started_at=_epoch(job.get("start_time")) if state != JobState.PENDING else None,
        ended_at=_epoch(job.get("end_time")) if final else None,
        reason=str(job.get("state_reason") or "") if state == JobState.PENDING else "",
    )


_JOBCOMP_FIELD = re.compile(r"(\w+)=(.*?)(?= \w+=|\s*$)")


def parse_jobcomp_line(line: str) -> dict[str, str]:
    """``JobId=1 UserId=a(1002) ... ExitCode=0:0`` as a dict."""
    return {m.group(1): m.group(2) for m in _JOBCOMP_FIELD.finditer(line.strip())}


def _local_time(value: str | None) -> datetime | None:
    if not value or value in ("Unknown", "None"):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


def observation_from_jobcomp(fields: dict[str, str]) -> Observation:
    state = from_slurm(fields.get("JobState", ""))
    status, signal = split_exit_code(fields.get("ExitCode", ""))
    exit_code = status if not signal else 128 + signal
    return Observation(
        state=state,
        exit_code=exit_code,
        started_at=_local_time(fields.get("StartTime")),
        ended_at=_local_time(fields.get("EndTime")),
    )


def observation_from_slurmdb(job: dict[str, Any]) -> Observation:
    state = from_slurm(str(job.get("state", {}).get("current", "")))
    times = job.get("time", {})
    exit_info = job.get("exit_code", {})
    return Observation(
        state=state,
        exit_code=exit_info.get("return_code") if isinstance(exit_info, dict) else None,
        started_at=_epoch(times.get("start")),
        ended_at=_epoch(times.get("end")),
    )


class SlurmError(RuntimeError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        # v0.0.38 names the number error_number or (for some failures) error_code
        self.numbers = {e.get("error_number", e.get("error_code")) for e in errors}
        text = "; ".join(str(e.get("error") or e.get("description") or e) for e in errors)
        super().__init__(text)


class SlurmBackend:
    name = "slurm"
    files_owned_by_user = True
    places_datasets = False

    def __init__(self, settings: SlurmSettings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.base = settings.rest_url.rstrip("/")
        self.version = settings.api_version
        self.http = http or requests.Session()
        self.remembers_finished_jobs = bool(settings.accounting or settings.job_completion_file)

    def __repr__(self) -> str:  # never the key
        return f"SlurmBackend({self.base!r})"

    def _key(self) -> bytes:
        try:
            return Path(self.settings.jwt_key_file).read_bytes()
        except OSError as error:
            log.error("Cannot read the Slurm JWT key file: %s", error.strerror)
            raise BackendUnavailable(
                "The portal cannot authenticate to the batch system (its JWT key file is "
                "unreadable); tell the operators."
            ) from None

    def _call(
        self, method: str, path: str, user: str, body: Any = None, *, acts: bool = False
    ) -> dict[str, Any]:
        """One slurmrestd call. ``acts``: the call changes something (a submission); when
        it may have reached Slurm but no answer came back, it raises SubmissionUncertain
        instead of BackendUnavailable."""
        token = mint_token(self._key(), user, self.settings.token_lifetime_seconds)
        headers = {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token}
        try:
            response = self.http.request(
                method,
                f"{self.base}{path}",
                headers=headers,
                json=body,
                timeout=self.settings.request_timeout_seconds,
            )
        except requests.RequestException as error:
            log.warning("slurmrestd unreachable: %s", type(error).__name__)
            if acts and may_have_been_sent(error):
                raise SubmissionUncertain(UNCERTAIN) from None
            raise BackendUnavailable(UNAVAILABLE) from None
        if response.status_code in (401, 403):
            raise BackendUnavailable(
                "The batch system refused the portal's credentials; tell the operators."
            )
        lost = SubmissionUncertain(UNCERTAIN) if acts else None
        try:
            data = response.json()
        except ValueError:
            raise lost or BackendUnavailable(
                f"The batch system answered {response.status_code} without data; try again."
            ) from None
        errors = [e for e in data.get("errors", []) if e]
        if errors:
            error = SlurmError(errors)
            if error.numbers & CONTROLLER_NOT_REACHED:
                raise BackendUnavailable(CONTROLLER_DOWN)
            if error.numbers & CONTROLLER_ANSWER_LOST:
                raise lost or BackendUnavailable(CONTROLLER_DOWN)
            if error.numbers <= UNSPECIFIED:
                # what slurmrestd says when slurmctld died under it ("Unable to find JobId"
                # included): no refusal and no fact, so neither is concluded from it
                log.warning("slurmrestd: unspecified error on %s %s: %s", method, path, error)
                raise lost or BackendUnavailable(
                    f"The batch system could not answer ({error}); try again in a few minutes."
                )
            raise error
        if response.status_code >= 500:
            raise lost or BackendUnavailable(f"The batch system failed ({response.status_code}).")
        return data

    def submit(self, submission: Submission) -> str:
        spec = submission.spec
        job: dict[str, Any] = {
            "name": spec.name,
            "partition": spec.partition,
            "current_working_directory": spec.working_dir,
            "standard_output": submission.output_path,
            "environment": {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                **submission.environment,
            },
            "time_limit": spec.time_limit_minutes,
            "nodes": spec.nodes,
            "cpus_per_task": spec.cpus_per_task,
            "memory_per_node": spec.memory_mb,
            "comment": f"{COMMENT_PREFIX}{submission.uid}",
        }
        if submission.account:
            job["account"] = submission.account
        request_gres = gres(spec)
        if request_gres:
            job["gres"] = request_gres
        try:
            data = self._call(
                "POST",
                f"/slurm/{self.version}/job/submit",
                submission.unix_user,
                {"script": submission.script, "job": job},
                acts=True,
            )
        except SlurmError as error:
            raise BackendRejected(f"Slurm refused the job: {error}") from None
        return str(data["job_id"])

    def poll(self, job_ids: Sequence[str]) -> dict[str, Observation]:
        if not job_ids:
            return {}
        data = self._call("GET", f"/slurm/{self.version}/jobs", self.settings.poll_user)
        wanted = set(job_ids)
        found = {
            str(job["job_id"]): observation_from_rest(job)
            for job in data.get("jobs", [])
            if str(job.get("job_id")) in wanted
        }
        missing = [job_id for job_id in job_ids if job_id not in found]
        if missing:
            found.update(self.finished(missing))
        return found

    def finished(self, job_ids: Sequence[str]) -> dict[str, Observation]:
        """Jobs slurmctld no longer knows: from slurmdbd, else the job-completion file."""
        found: dict[str, Observation] = {}
        if self.settings.accounting:
            for job_id in job_ids:
                try:
                    data = self._call(
                        "GET", f"/slurmdb/{self.version}/job/{job_id}", self.settings.poll_user
                    )
                except SlurmError:
                    continue
                jobs = data.get("jobs") or []
                if jobs:
                    found[job_id] = observation_from_slurmdb(jobs[0])
        path = self.settings.job_completion_file
        remaining = {job_id for job_id in job_ids if job_id not in found}
        if path and remaining:
            try:
                lines = Path(path).read_text(errors="replace").splitlines()
            except OSError as error:
                log.warning("Cannot read the job-completion file: %s", error.strerror)
                lines = []
            for line in lines:
                fields = parse_jobcomp_line(line)
                if fields.get("JobId") in remaining:
                    found[fields["JobId"]] = observation_from_jobcomp(fields)
        return found

    def find(self, uids: Sequence[str]) -> dict[str, str]:
        """Jobs slurmctld still knows, by the ``aitestbed:<uid>`` comment the portal sets."""
        data = self._call("GET", f"/slurm/{self.version}/jobs", self.settings.poll_user)
        wanted = {f"{COMMENT_PREFIX}{uid}": uid for uid in uids}
        return {
            wanted[job["comment"]]: str(job["job_id"])
            for job in data.get("jobs", [])
            if job.get("comment") in wanted
        }

    def cancel(self, job_id: str, unix_user: str) -> None:
        try:
            self._call("DELETE", f"/slurm/{self.version}/job/{job_id}", unix_user)
        except SlurmError as error:
            if INVALID_JOB_ID in error.numbers:
                return  # already gone: the poller records how it ended
            if ACCESS_DENIED in error.numbers:
                raise BackendRejected("Slurm refused to cancel this job (not yours).") from None
            raise BackendRejected(f"Slurm refused to cancel the job: {error}") from None

    def user_exists(self, unix_user: str) -> bool:
        if self.settings.user_check == "none":
            return True
        return self.account_uid(unix_user) is not None

    def account_uid(self, unix_user: str) -> int | None:
        """From the directory the portal host shares with the cluster (user_check: passwd)."""
        if self.settings.user_check == "none":
            return None
        try:
            return pwd.getpwnam(unix_user).pw_uid
        except KeyError:
            return None
