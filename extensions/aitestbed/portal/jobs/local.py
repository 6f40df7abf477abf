"""The local backend: jobs as processes on the portal's machine (the embedded default).

Same states, output files, cancel and time limit as on Slurm, but no isolation: every job
runs as the portal's own user. Each job has a folder under ``jobs_dir`` with its script, its
``job.json`` and the ``status.json`` its runner keeps; the state lives there, so a restarted
portal finds every job again (runners run in sessions of their own and outlive the portal).
A runner that is gone without a final status (killed, or it could not start) is noticed by
the next poll: the job is recorded FAILED (CANCELLED if a cancel was asked) with the reason,
whatever is left of the job's processes is stopped, and its GPUs are free again.

The job's datasets appear in its folder as ``datasets/<slug>`` (links to exactly the
datasets the gateway allowed), and ``AITESTBED_DATASETS_DIR`` points there, as
``~/datasets`` does in an embedded session. The same Unix user can still read any
dataset folder directly: no isolation.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aitestbed.policy.mounts import DATASETS_DIR_ENV, DATASETS_ENV
from aitestbed.portal.jobs.backend import BackendRejected, Observation, Submission
from aitestbed.portal.jobs.datasets import JobDataset
from aitestbed.portal.jobs.local_runner import JOB_MARK_ENV, write_status
from aitestbed.portal.jobs.states import JobState

RUNNER_PID = "runner.pid"


class LocalBackend:
    name = "local"
    files_owned_by_user = False
    places_datasets = True
    remembers_finished_jobs = False  # a job folder removed by hand is not a lost job here

    def __init__(self, jobs_dir: Path, *, seconds_per_minute: float = 60.0) -> None:
        """``seconds_per_minute`` scales time limits (tests use a fraction of a second)."""
        self.jobs_dir = Path(jobs_dir)
        self.seconds_per_minute = seconds_per_minute
        self._children: dict[str, subprocess.Popen] = {}

    def _dir(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise ValueError(f"not a local job id: {job_id!r}")
        return self.jobs_dir / job_id

    def submit(self, submission: Submission) -> str:
        spec = submission.spec
        if not Path(spec.working_dir).is_dir():
            raise BackendRejected(
                f"working_dir: {spec.working_dir} does not exist; create it first."
            )
        folders = {d.slug: _dataset_folder(d) for d in submission.datasets}
        job_dir = self._dir(submission.uid)
        job_dir.mkdir(parents=True, exist_ok=False)
        (job_dir / "script.sh").write_text(submission.script, encoding="utf-8")
        datasets_dir = job_dir / "datasets"
        datasets_dir.mkdir()
        for slug, folder in folders.items():
            (datasets_dir / slug).symlink_to(folder, target_is_directory=True)
        python_bin = os.path.dirname(sys.executable)
        environment = {
            "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.path.expanduser("~"),
            "LANG": "C.UTF-8",
            **submission.environment,
            DATASETS_DIR_ENV: str(datasets_dir),
            DATASETS_ENV: ",".join(sorted(folders)),
            # How the backend recognises the job's processes after its runner is gone.
            JOB_MARK_ENV: submission.uid,
        }
        job = {
            "working_dir": spec.working_dir,
            "output_path": submission.output_path,
            "environment": environment,
            "time_limit_seconds": spec.time_limit_minutes * self.seconds_per_minute,
        }
        (job_dir / "job.json").write_text(json.dumps(job), encoding="utf-8")
        with (job_dir / "runner.log").open("ab") as runner_log:
            child = subprocess.Popen(
                self.runner_command(job_dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=runner_log,
                start_new_session=True,
            )
        self._children[submission.uid] = child
        (job_dir / RUNNER_PID).write_text(str(child.pid))
        return submission.uid

    def runner_command(self, job_dir: Path) -> list[str]:
        """The runner's command line; it names ``job_dir``, which is how a runner is told
        apart from an unrelated process that got its pid later."""
        return [sys.executable, "-m", "aitestbed.portal.jobs.local_runner", str(job_dir)]

    def poll(self, job_ids: Sequence[str]) -> dict[str, Observation]:
        for uid, child in list(self._children.items()):
            if child.poll() is not None:  # reap finished runners
                del self._children[uid]
        found = {}
        for job_id in job_ids:
            job_dir = self._dir(job_id)
            if not job_dir.is_dir():
                continue
            status = _read_status(job_dir)
            state = JobState(status.get("state", JobState.PENDING))
            if state.active and not self._runner_alive(job_id, status):
                status = self._settle_if_lost(job_dir)
                state = JobState(status["state"])
            found[job_id] = Observation(
                state,
                exit_code=status.get("exit_code"),
                started_at=_time(status.get("started_at")),
                ended_at=_time(status.get("ended_at")),
                reason=status.get("reason", ""),
            )
        return found

    def _runner_alive(self, job_id: str, status: dict) -> bool:
        child = self._children.get(job_id)
        if child is not None:
            return child.poll() is None
        job_dir = self._dir(job_id)
        try:
            pid = int((job_dir / RUNNER_PID).read_text())
        except (OSError, ValueError):
            pid = status.get("runner_pid")  # jobs started before runner.pid existed
        return _alive(pid) and _names(pid, str(job_dir))

    def _settle_if_lost(self, job_dir: Path) -> dict:
        """The runner is gone: unless it wrote a final status just before it went, stop
        what is left of the job and record the end (CANCELLED if a cancel was asked, else
        FAILED with the reason)."""
        status = _read_status(job_dir)
        if not JobState(status.get("state", JobState.PENDING)).active:
            return status
        _stop_job_group(status.get("job_pid"), job_dir.name)
        if (job_dir / "cancel").exists():
            final = {"state": JobState.CANCELLED.value, "reason": ""}
        elif status.get("state") == JobState.RUNNING:
            final = {
                "state": JobState.FAILED.value,
                "reason": "the job's supervisor process stopped unexpectedly (killed, or the "
                "machine restarted), so the job was stopped; submit it again.",
            }
        else:
            final = {
                "state": JobState.FAILED.value,
                "reason": "the job's supervisor process stopped before the job started "
                f"({_last_line(job_dir / 'runner.log')}); submit it again.",
            }
        final.update(ended_at=datetime.now(UTC).isoformat(), exit_code=None)
        write_status(job_dir, **final)
        return {**status, **final}

    def find(self, uids: Sequence[str]) -> dict[str, str]:
        return {uid: uid for uid in uids if uid.isalnum() and (self.jobs_dir / uid).is_dir()}

    def cancel(self, job_id: str, unix_user: str) -> None:
        job_dir = self._dir(job_id)
        (job_dir / "cancel").touch()
        status = _read_status(job_dir)
        if not JobState(status.get("state", JobState.PENDING)).active:
            return
        if not self._runner_alive(job_id, status):
            # Nobody would read the cancel file: end the job here.
            self._settle_if_lost(job_dir)
            return
        pid = status.get("runner_pid")
        if pid:  # without one the runner has not started the job and sees the cancel file
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def user_exists(self, unix_user: str) -> bool:
        return True

    def account_uid(self, unix_user: str) -> int | None:
        return None  # every job runs as the portal's own user: the mapped name is a label


def _dataset_folder(dataset: JobDataset) -> Path:
    """The dataset's folder on this machine; other storage cannot reach a local job."""
    path = dataset.storage.get("path")
    if dataset.storage.get("kind") not in ("local", "host_path") or not path:
        raise BackendRejected(
            f"datasets: {dataset.slug!r} is stored where jobs on this machine cannot read it "
            f"({dataset.storage.get('kind')} storage)."
        )
    if not Path(path).is_dir():
        raise BackendRejected(
            f"datasets: the files of {dataset.slug!r} are not on this machine yet; tell the "
            "operators."
        )
    return Path(path)


def _read_status(job_dir: Path) -> dict:
    """The runner's status.json; empty before its first status."""
    try:
        return json.loads((job_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _last_line(path: Path) -> str:
    """The last line the runner wrote to its log (its error), or a word when there is none."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1][:300] if lines else "no error was recorded"


def _names(pid: int, text: str) -> bool:
    """Whether the command line of ``pid`` contains ``text``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return text.encode() in cmdline.read()
    except OSError:
        return False


def _stop_job_group(pgid: int | None, job_id: str) -> None:
    """Kill the job's process group if it still runs; its members are recognised by the
    job's mark in their environment, so a reused process id is never killed."""
    if not pgid:
        return
    mark = f"{JOB_MARK_ENV}={job_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                os.killpg(pgid, signal.SIGKILL)
                return
        except OSError:
            continue


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
