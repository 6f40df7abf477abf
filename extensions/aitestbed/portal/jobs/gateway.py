"""The job gateway: the portal's decisions about jobs, with the backend at the edge.

Submit: cluster account allowed (no system account) -> idempotency key (bound to the
request's hash) -> spec validation -> project membership and datasets (each one decided and
audited; any refusal refuses the job) -> quota admission -> user exists on the cluster ->
record -> backend. A job is recorded before the backend sees it (so a retry with the same
key finds it) and removed again when the backend surely did not take it (refused, or not
reachable). When the answer was lost after the request was sent, the record stays
"submission uncertain" and the backend is the witness: the job's uid travels with it (the
Slurm comment) and is looked up there before anything else happens, so a job is made at
most once and never lost.
Reading (list, get) only touches the database; one poller per backend (``poll_once``)
fetches every active job in one call and records states, exit codes and charges.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import pwd
import secrets
import stat
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aitestbed.policy.cluster_accounts import check_cluster_account
from aitestbed.portal import admission, ledger, models, quota
from aitestbed.portal.auth import Identity
from aitestbed.portal.datasets.access import decide_and_audit, viewer_of
from aitestbed.portal.db import transaction
from aitestbed.portal.jobs import script as job_script
from aitestbed.portal.jobs.backend import (
    BackendRejected,
    BackendUnavailable,
    JobBackend,
    Observation,
    Submission,
    SubmissionUncertain,
)
from aitestbed.portal.jobs.datasets import DatasetPlacementError, JobDataset, slurm_placement
from aitestbed.portal.jobs.spec import JobSpec, JobSpecError, validate
from aitestbed.portal.jobs.states import ACTIVE_STATES, JobState
from aitestbed.portal.queries import is_operator
from aitestbed.settings import Settings

log = logging.getLogger("aitestbed.portal.jobs")
MAX_LOG_BYTES = 1024 * 1024
SUBMISSION_GRACE = timedelta(minutes=2)  # longer than any submit call can take
UNCERTAIN_REASON = "submission uncertain: checking whether the batch system received it"
LOST_REASON = (
    "the batch system has no trace of this job any more (lost in a crash of its "
    "controller); submit it again with a new idempotency key"
)
NEVER_ARRIVED_REASON = (
    "the submission was interrupted and never reached the batch system; submit it again "
    "(with a new idempotency key)"
)


class JobError(Exception):
    """A request the gateway refuses: HTTP status, message, and the field when there is one."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite gives naive datetimes back
    return value


class JobGateway:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        backend: JobBackend,
        *,
        clock: Callable[[], datetime] = _utcnow,
        resolve: Callable[[str], str] = os.path.realpath,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.jobs = settings.jobs
        self.backend = backend
        self.clock = clock
        self.resolve = resolve
        self.backend_calls = 0
        self._missing_since: dict[int, datetime] = {}  # record id -> first poll without it
        # One portal process serves a database: a submission recorded before this gateway
        # existed was interrupted by the previous process, however recent it is.
        self.started_at = clock()

    # -- submit ------------------------------------------------------------------------

    def submit(
        self, identity: Identity, request: Mapping[str, Any], idempotency_key: str | None
    ) -> tuple[models.Job, bool]:
        """The job and whether it was created now (False: the key's earlier job)."""
        if idempotency_key is not None and (
            not 1 <= len(idempotency_key) <= 128 or not idempotency_key.isprintable()
        ):
            raise JobError(422, "1-128 printable characters.", "idempotency_key")
        unix_user = self.jobs.unix_user(identity.name)
        self._check_account(unix_user)
        fingerprint = request_fingerprint(request)
        if idempotency_key:
            existing = self._by_key(identity.name, idempotency_key, fingerprint)
            if existing is not None:
                return existing, False
        with self.sessions() as session:
            images = {
                row.slug: row.gpu_capable
                for row in session.scalars(select(models.Image).where(models.Image.enabled))
            }
        try:
            spec = validate(
                request, jobs=self.jobs, unix_user=unix_user, images=images, resolve=self.resolve
            )
        except JobSpecError as error:
            raise JobError(422, error.reason, error.field) from None
        uid = secrets.token_hex(8)
        datasets = self._allowed_datasets(identity, spec, uid)
        image_ref = self._image_ref(spec.image)
        binds, dataset_env = self._place_datasets(datasets, in_container=image_ref is not None)
        try:
            job_id, account, output_path = self._record(
                identity, spec, uid, idempotency_key, fingerprint
            )
        except IntegrityError:
            existing = self._by_key(identity.name, idempotency_key or "", fingerprint)
            if existing is None:
                raise
            return existing, False
        submission = Submission(
            uid=uid,
            spec=spec,
            unix_user=unix_user,
            account=account,
            script=job_script.render(
                spec,
                job_uid=uid,
                container_launcher=self.jobs.container_launcher,
                image_ref=image_ref,
                papermill=self.jobs.papermill,
                dataset_binds=binds,
            ),
            output_path=output_path,
            environment={
                **spec.environment,
                "HOME": self.jobs.home_template.format(user=unix_user),
                "AITESTBED_JOB_UID": uid,
                "AITESTBED_PROJECT": spec.project,
                **dataset_env,
            },
            datasets=datasets,
        )
        try:
            backend_id = self.backend.submit(submission)
        except SubmissionUncertain as error:
            # Slurm may hold the job: keep the record (and its quota) until the uid is looked
            # up there, by a retry with the same key or by the poller; never submit twice.
            with transaction(self.sessions) as session:
                session.get(models.Job, job_id).reason = UNCERTAIN_REASON
            log.warning("Job %s (%s): submission uncertain, kept for a look-up", job_id, uid)
            raise JobError(503, f"{error} Its job id is {job_id}.") from None
        except (BackendUnavailable, BackendRejected) as error:
            with transaction(self.sessions) as session:
                # Never charged (it never ran) and still active: nothing to take back from
                # the ledger; the GPUs it held are released with the row.
                session.execute(
                    delete(models.Job).where(
                        models.Job.id == job_id,
                        models.Job.state.in_([s.value for s in ACTIVE_STATES]),
                    )
                )
            status = 503 if isinstance(error, BackendUnavailable) else 422
            raise JobError(status, str(error)) from None
        with transaction(self.sessions) as session:
            job = session.get(models.Job, job_id)
            job.backend_job_id = backend_id
            job.reason = ""
        log.info("Job %s (%s %s) submitted for %s", job_id, self.backend.name, backend_id, uid)
        return job, True

    def _allowed_datasets(
        self, identity: Identity, spec: JobSpec, uid: str
    ) -> tuple[JobDataset, ...]:
        """Decide (and audit) every dataset the job names, in the job's project; the first
        refusal refuses the whole job with the policy's reason. A dataset the user cannot
        see gets the same answer as one that does not exist."""
        if not spec.datasets:
            return ()
        with transaction(self.sessions) as session:
            self._chargeable_project(session, identity, spec.project)
            viewer = viewer_of(session, identity)
            allowed: list[JobDataset] = []
            refusal = None
            for slug in spec.datasets:
                row, decision = decide_and_audit(
                    session,
                    viewer,
                    slug,
                    "job",
                    project=spec.project,
                    detail=f"job {uid} {spec.name}",
                )
                if not decision.allowed:
                    refusal = refusal or decision
                    continue
                allowed.append(
                    JobDataset(
                        slug=row.slug,
                        storage={k: str(v) for k, v in (row.storage or {}).items()},
                        cluster_path=row.cluster_path,
                    )
                )
        # Raised after the commit: the refusals stay in the audit log.
        if refusal is not None:
            raise JobError(403, refusal.reason, "datasets")
        return tuple(allowed)

    def _place_datasets(
        self, datasets: tuple[JobDataset, ...], *, in_container: bool
    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """Container binds and environment for the job's datasets (Slurm); a backend that
        places them itself (local) gets only the list and sets the folder."""
        if getattr(self.backend, "places_datasets", False):
            return [], {"AITESTBED_DATASETS": ",".join(sorted(d.slug for d in datasets))}
        try:
            return slurm_placement(
                datasets, datasets_dir=self.jobs.datasets_dir, in_container=in_container
            )
        except DatasetPlacementError as error:
            log.warning("Dataset placement refused: %s", error)
            raise JobError(409, str(error), "datasets") from None

    def _record(
        self,
        identity: Identity,
        spec: JobSpec,
        uid: str,
        idempotency_key: str | None,
        request_hash: str | None = None,
    ) -> tuple[int, str | None, str]:
        """Admit the job and record it (before the backend sees it), under the project's
        admission lock (:mod:`aitestbed.portal.admission`)."""
        unix_user = self.jobs.unix_user(identity.name)
        # Outside the lock: the backend may be slow to answer, and the answer does not
        # depend on what the project uses.
        if not self.backend.user_exists(unix_user):
            raise JobError(
                403,
                f"Your cluster account {unix_user!r} does not exist yet; ask the operators "
                "to create it before you submit jobs.",
            )
        with transaction(self.sessions) as session:
            admission.lock_project(session, spec.project)
            project = self._chargeable_project(session, identity, spec.project)
            refusal = admission.admit_job(
                session, project, spec.total_gpus, spec.time_limit_minutes, self.clock()
            )
            if refusal is not None:
                raise JobError(403, refusal.reason, refusal.field)
            output_path = posixpath.join(spec.working_dir, f"{spec.name}-{uid}.out")
            job = models.Job(
                uid=uid,
                owner=identity.name,
                unix_user=unix_user,
                project_id=project.id,
                account=project.slurm_account,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                name=spec.name,
                kind=spec.kind,
                spec=_spec_record(spec),
                backend=self.backend.name,
                state=JobState.PENDING.value,
                reason="submitting",
                partition=spec.partition,
                nodes=spec.nodes,
                gpus_per_node=spec.gpus_per_node,
                time_limit_minutes=spec.time_limit_minutes,
                working_dir=spec.working_dir,
                output_path=output_path,
                notebook_output=spec.notebook_output,
                submitted_at=self.clock(),
            )
            session.add(job)
            session.flush()
            return job.id, job.account, output_path

    def _image_ref(self, slug: str | None) -> str | None:
        if slug is None or self.jobs.container_launcher == "none":
            return None
        image = self.settings.image(slug)
        return self.jobs.image_prefix + image.image if image else None

    def _by_key(self, owner: str, key: str, fingerprint: str) -> models.Job | None:
        """The job an earlier request with this key made, if any. The key is bound to that
        request: another body with the same key is refused, never answered with the first
        job. A job whose submission is uncertain is looked up in the backend first."""
        with self.sessions() as session:
            job = session.scalar(
                select(models.Job).where(
                    models.Job.owner == owner, models.Job.idempotency_key == key
                )
            )
        if job is None:
            return None
        if job.request_hash is not None and job.request_hash != fingerprint:
            raise JobError(
                422,
                f"The Idempotency-Key {key!r} was already used for job {job.id} with a "
                "different request; use a new key for a new job.",
                "idempotency_key",
            )
        if _uncertain(job):
            # still uncertain when the backend is down: the poller settles it later
            with contextlib.suppress(BackendUnavailable):
                self.settle_interrupted_submissions(only=[job.id])
            return self._load(job.id)
        return job

    def _check_account(self, unix_user: str) -> None:
        """Refuse system accounts (deny list, UID below the minimum) before anything else,
        so a request for such an account never reaches the backend."""
        decision = check_cluster_account(
            unix_user,
            self.backend.account_uid(unix_user),
            min_uid=self.jobs.account_min_uid,
            denied=self.jobs.denied_accounts,
        )
        if not decision.allowed:
            log.warning("Refused a job for the cluster account %r (%s)", unix_user, decision.code)
            raise JobError(403, decision.reason)

    def _load(self, job_id: int) -> models.Job:
        with self.sessions() as session:
            return session.get(models.Job, job_id)

    def _chargeable_project(
        self, session: Session, identity: Identity, slug: str
    ) -> models.Project:
        project = session.scalar(select(models.Project).where(models.Project.slug == slug))
        member = project is not None and session.scalar(
            select(models.Membership.id)
            .join(models.User)
            .where(models.User.name == identity.name, models.Membership.project_id == project.id)
        )
        if project is None or not member:
            raise JobError(403, f"You are not a member of a project {slug!r}.", "project")
        if not project.is_active(date.today()):
            raise JobError(
                403,
                f"The allocation of {slug!r} is {project.status(date.today())}; "
                "jobs cannot be charged to it.",
                "project",
            )
        return project

    # -- read, cancel, logs ------------------------------------------------------------

    def list(
        self,
        identity: Identity,
        *,
        everyone: bool = False,
        limit: int | None = None,
        before: int | None = None,
    ) -> list[models.Job]:
        """Newest first; ``limit`` jobs with an id below ``before`` (a page, see paging)."""
        with self.sessions() as session:
            query = select(models.Job).order_by(models.Job.id.desc()).limit(limit)
            if not (everyone and is_operator(session, identity)):
                query = query.where(models.Job.owner == identity.name)
            if before is not None:
                query = query.where(models.Job.id < before)
            return list(session.scalars(query))

    def get(self, identity: Identity, job_id: int) -> models.Job:
        """The caller's job; other people's jobs look like missing ones (404)."""
        with self.sessions() as session:
            job = session.get(models.Job, job_id)
            if job is None or (job.owner != identity.name and not is_operator(session, identity)):
                raise JobError(404, f"No job {job_id} that you can see.")
            return job

    def cancel(self, identity: Identity, job_id: int) -> models.Job:
        job = self.get(identity, job_id)
        if job.owner != identity.name:
            raise JobError(403, "Only the owner of a job can cancel it.")
        if not JobState(job.state).active:
            return job
        if job.backend_job_id is None:
            raise JobError(409, "The job is still being submitted; try again in a moment.")
        try:
            self.backend.cancel(job.backend_job_id, job.unix_user)
            # The answer tells the job's state as the backend sees it now (a job whose
            # runner was gone is CANCELLED at once; a running one ends a moment later).
            observation = self.backend.poll([job.backend_job_id]).get(job.backend_job_id)
        except BackendUnavailable as error:
            raise JobError(503, str(error)) from None
        except BackendRejected as error:
            raise JobError(409, str(error)) from None
        with transaction(self.sessions) as session:
            row = session.get(models.Job, job_id)
            if observation is not None and JobState(row.state).active:
                charges: dict[int, float] = defaultdict(float)
                self._observe(session, row, observation, charges)
                ledger.charge(session, charges)
                session.refresh(row)
            if JobState(row.state).active:
                row.reason = "cancel requested"
        return self._load(job_id)

    def logs(self, identity: Identity, job_id: int, tail_bytes: int = 65536) -> dict[str, Any]:
        job = self.get(identity, job_id)
        tail_bytes = max(1, min(tail_bytes, MAX_LOG_BYTES))
        try:
            # O_NOFOLLOW and the owner check: a job cannot trick the portal into reading
            # another file by replacing its output with a symlink.
            fd = os.open(job.output_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return {"job_id": job.id, "path": job.output_path, "text": "", "truncated": False}
        except OSError as error:
            raise JobError(409, f"The job's output cannot be read: {error.strerror}.") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or (
                self.backend.files_owned_by_user and info.st_uid != _uid(job.unix_user)
            ):
                raise JobError(409, "The job's output file is not a plain file of its owner.")
            size = info.st_size
            handle.seek(max(0, size - tail_bytes))
            data = handle.read(tail_bytes)
        return {
            "job_id": job.id,
            "path": job.output_path,
            "text": data.decode("utf-8", errors="replace"),
            "truncated": size > tail_bytes,
        }

    # -- poller ------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Update every active job of this backend with one backend call; returns the
        number of jobs that changed. Raises BackendUnavailable when the backend is down."""
        self.settle_interrupted_submissions()
        with self.sessions() as session:
            rows = session.scalars(
                select(models.Job).where(
                    models.Job.backend == self.backend.name,
                    models.Job.state.in_([s.value for s in ACTIVE_STATES]),
                    models.Job.backend_job_id.is_not(None),
                )
            ).all()
            # By record, not by backend id: after a crash two records may name one id.
            active = {row.id: (row.backend_job_id, row.uid) for row in rows}
        if not active:
            return 0
        self.backend_calls += 1
        backend_ids = sorted({backend_id for backend_id, _ in active.values()})
        observations = self._witnessed(active, self.backend.poll(backend_ids))
        changed = 0
        charges: dict[int, float] = defaultdict(float)
        with transaction(self.sessions) as session:
            for job_id, observation in observations.items():
                job = session.get(models.Job, job_id)
                if job is None or not JobState(job.state).active:
                    continue
                changed += self._observe(session, job, observation, charges)
            ledger.charge(session, charges)
        return changed

    def _observe(
        self,
        session: Session,
        job: models.Job,
        observation: Observation,
        charges: dict[int, float],
    ) -> int:
        """Record what the backend observed of an active job, through the ledger: a job
        that ended is charged once (its GPU-hours added to ``charges``, by project); a
        job another poller has ended meanwhile is never made active again. Returns 1 when
        the record changed."""
        started_at = job.started_at or observation.started_at
        if observation.state.active:
            now = (observation.state.value, started_at, observation.reason)
            if now == (job.state, job.started_at, job.reason):
                return 0
            return ledger.update_active_job(
                session, job.id, state=now[0], started_at=now[1], reason=now[2]
            )
        ended_at = observation.ended_at or self.clock()
        charged = quota.elapsed_gpu_hours(job.total_gpus, _aware(started_at), _aware(ended_at))
        ended = ledger.end_job(
            session,
            job.id,
            charged,
            state=observation.state.value,
            reason=observation.reason,
            started_at=started_at,
            exit_code=observation.exit_code,
            ended_at=ended_at,
        )
        if ended is None:
            return 0  # ended by another poller meanwhile: charged there
        charges[ended[0]] += ended[1]
        log.info(
            "Job %s ended %s (exit %s), charged %.4f GPU-hours",
            job.id,
            observation.state.value,
            observation.exit_code,
            charged,
        )
        return 1

    def _witnessed(
        self, active: Mapping[int, tuple[str, str]], observations: Mapping[str, Observation]
    ) -> dict[int, Observation]:
        """Per record (id -> backend id, uid): the observation that is about it, or a FAILED
        one when the backend has lost the job. An observation naming another uid means the
        backend reused the id of a job it lost (slurmctld killed before it saved the job):
        it is not this record's. A job the backend has no trace of, when it keeps finished
        jobs (job-completion file, accounting), is lost once missing for SUBMISSION_GRACE."""
        now = self.clock()
        kept: dict[int, Observation] = {}
        for job_id, (backend_id, uid) in active.items():
            observation = observations.get(backend_id)
            if observation is not None and observation.uid not in (None, uid):
                log.warning("Backend id %s now names another job than %s", backend_id, uid)
                observation = None
            if observation is not None:
                self._missing_since.pop(job_id, None)
                kept[job_id] = observation
                continue
            if not self.backend.remembers_finished_jobs:
                continue  # finished jobs may be forgotten: missing proves nothing
            since = self._missing_since.setdefault(job_id, now)
            if now - since >= SUBMISSION_GRACE:
                del self._missing_since[job_id]
                log.warning("Job %s (%s %s) is lost", uid, self.backend.name, backend_id)
                kept[job_id] = Observation(JobState.FAILED, reason=LOST_REASON)
        return kept

    def settle_interrupted_submissions(self, only: Sequence[int] | None = None) -> None:
        """Jobs recorded but never confirmed by the backend: the submission's answer was
        lost (uncertain) or the portal stopped between the two steps. The backend is the
        witness: a job found there by its uid is adopted; one still missing after
        SUBMISSION_GRACE is marked FAILED, so it neither hangs in PENDING nor holds quota.
        Nothing is ever resubmitted. ``only``: just these records (a retry's look-up)."""
        now = self.clock()
        # One portal process serves a database: a submission recorded before this gateway
        # existed was interrupted by the previous process, however recent it is.
        cutoff = max(now - SUBMISSION_GRACE, self.started_at)
        with self.sessions() as session:
            query = select(models.Job).where(
                models.Job.backend == self.backend.name,
                models.Job.backend_job_id.is_(None),
                models.Job.state.in_([s.value for s in ACTIVE_STATES]),
            )
            if only is not None:
                query = query.where(models.Job.id.in_(list(only)))
            unconfirmed = {
                row.uid: (row.id, _aware(row.submitted_at) < cutoff)
                for row in session.scalars(query)
                if _uncertain(row) or _aware(row.submitted_at) < cutoff
            }
        if not unconfirmed:
            return
        self.backend_calls += 1
        found = self.backend.find(list(unconfirmed))
        with transaction(self.sessions) as session:
            for uid, (job_id, stale) in unconfirmed.items():
                job = session.get(models.Job, job_id)
                if job is None or job.backend_job_id is not None:
                    continue  # confirmed meanwhile by the submission itself
                if uid in found:
                    job.backend_job_id = found[uid]
                    job.reason = ""
                    log.warning("Interrupted submission %s settled: adopted", uid)
                    continue
                if not stale:
                    continue  # not there yet: the answer may still be on its way
                # Never ran: charged 0, through the ledger like every job that ends.
                ledger.end_job(
                    session,
                    job_id,
                    0.0,
                    state=JobState.FAILED.value,
                    reason=NEVER_ARRIVED_REASON,
                    ended_at=now,
                )
                log.warning("Interrupted submission %s settled: %s", uid, NEVER_ARRIVED_REASON)


def request_fingerprint(request: Mapping[str, Any]) -> str:
    """A hash of the submission body in a canonical form (keys sorted, no spacing), which
    binds an idempotency key to the request it was first used with."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _uncertain(job: models.Job) -> bool:
    return job.backend_job_id is None and job.reason == UNCERTAIN_REASON


def _uid(user: str) -> int:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return -1


def _spec_record(spec: JobSpec) -> dict[str, Any]:
    record = asdict(spec)
    record["command"] = list(spec.command)
    record["parameters"] = dict(spec.parameters)
    record["environment"] = sorted(spec.environment)  # names only: values may be secrets
    record["datasets"] = list(spec.datasets)
    return record
