"""The job gateway: the portal's decisions about jobs, with the backend at the edge.

Submit: idempotency key -> spec validation -> project membership and datasets (each one
decided and audited; any refusal refuses the job) -> quota admission -> user exists on the
cluster -> record -> backend. A job is recorded before the backend sees it
(so a retry with the same key finds it) and removed again if the backend did not take it.
Reading (list, get) only touches the database; one poller per backend (``poll_once``)
fetches every active job in one call and records states, exit codes and charges.
"""

from __future__ import annotations

import logging
import os
import posixpath
import pwd
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aitestbed.portal import models, quota
from aitestbed.portal.auth import Identity
from aitestbed.portal.datasets.access import audit, decide_and_audit, viewer_of
from aitestbed.portal.datasets.linkage import job_linkage
from aitestbed.portal.db import transaction
from aitestbed.portal.jobs import script as job_script
from aitestbed.portal.jobs.backend import (
    BackendRejected,
    BackendUnavailable,
    JobBackend,
    Submission,
)
from aitestbed.portal.jobs.datasets import DatasetPlacementError, JobDataset, slurm_placement
from aitestbed.portal.jobs.spec import JobSpec, JobSpecError, validate
from aitestbed.portal.jobs.states import ACTIVE_STATES, JobState
from aitestbed.portal.queries import is_operator
from aitestbed.portal.usage import usage_by_project
from aitestbed.settings import Settings

log = logging.getLogger("aitestbed.portal.jobs")
MAX_LOG_BYTES = 1024 * 1024
SUBMISSION_GRACE = timedelta(minutes=2)  # longer than any submit call can take


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

    # -- submit ------------------------------------------------------------------------

    def submit(
        self, identity: Identity, request: Mapping[str, Any], idempotency_key: str | None
    ) -> tuple[models.Job, bool]:
        """The job and whether it was created now (False: the key's earlier job)."""
        if idempotency_key is not None and (
            not 1 <= len(idempotency_key) <= 128 or not idempotency_key.isprintable()
        ):
            raise JobError(422, "1-128 printable characters.", "idempotency_key")
        if idempotency_key:
            existing = self._by_key(identity.name, idempotency_key)
            if existing is not None:
                return existing, False
        unix_user = self.jobs.unix_user(identity.name)
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
            job_id, account, output_path = self._record(identity, spec, uid, idempotency_key)
        except IntegrityError:
            existing = self._by_key(identity.name, idempotency_key or "")
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
        except (BackendUnavailable, BackendRejected) as error:
            with transaction(self.sessions) as session:
                session.delete(session.get(models.Job, job_id))
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
            if refusal is None:
                refusal = self._unlinked(session, identity, spec, uid, [d.slug for d in allowed])
        # Raised after the commit: the refusals stay in the audit log.
        if refusal is not None:
            raise JobError(403, refusal.reason, "datasets")
        return tuple(allowed)

    def _unlinked(self, session, identity: Identity, spec: JobSpec, uid: str, slugs):
        """Two pseudonymized datasets in one job need an operator's linkage approval."""
        decision = job_linkage(session, spec.project, slugs)
        if decision.allowed:
            return None
        for slug in slugs:
            audit(
                session,
                user=identity.name,
                action="job",
                allowed=False,
                dataset=slug,
                reason=f"{decision.code}: {decision.reason}",
                project=spec.project,
                detail=f"job {uid} {spec.name}",
            )
        return decision

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
        self, identity: Identity, spec: JobSpec, uid: str, idempotency_key: str | None
    ) -> tuple[int, str | None, str]:
        """Admit the job and record it (before the backend sees it)."""
        unix_user = self.jobs.unix_user(identity.name)
        with transaction(self.sessions) as session:
            project = self._chargeable_project(session, identity, spec.project)
            refusal = quota.admit(
                quota.Allocation(project.gpu_hours_budget, project.max_concurrent_gpus),
                self._usage(session, project),
                spec.total_gpus,
                spec.time_limit_minutes,
            )
            if refusal is not None:
                raise JobError(403, refusal.reason, refusal.field)
            if not self.backend.user_exists(unix_user):
                raise JobError(
                    403,
                    f"Your cluster account {unix_user!r} does not exist yet; ask the operators "
                    "to create it before you submit jobs.",
                )
            output_path = posixpath.join(spec.working_dir, f"{spec.name}-{uid}.out")
            job = models.Job(
                uid=uid,
                owner=identity.name,
                unix_user=unix_user,
                project_id=project.id,
                account=project.slurm_account,
                idempotency_key=idempotency_key,
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

    def _by_key(self, owner: str, key: str) -> models.Job | None:
        with self.sessions() as session:
            return session.scalar(
                select(models.Job).where(
                    models.Job.owner == owner, models.Job.idempotency_key == key
                )
            )

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

    def _usage(self, session: Session, project: models.Project) -> quota.Usage:
        """Shared with sessions: GPU-hours used and GPUs held by the project's sessions and
        jobs (``portal.usage``), plus the time limits the active jobs reserve."""
        shared = usage_by_project(session, [project.id], self.clock())[project.id]
        gpus = models.Job.nodes * models.Job.gpus_per_node
        reserved_gpu_minutes = session.scalar(
            select(func.coalesce(func.sum(gpus * models.Job.time_limit_minutes), 0)).where(
                models.Job.project_id == project.id,
                models.Job.state.in_([s.value for s in ACTIVE_STATES]),
            )
        )
        return quota.Usage(
            charged_gpu_hours=shared.gpu_hours_used,
            reserved_gpu_hours=float(reserved_gpu_minutes) / 60.0,
            gpus_in_use=int(shared.gpus_in_use),
        )

    # -- read, cancel, logs ------------------------------------------------------------

    def list(self, identity: Identity, *, everyone: bool = False) -> list[models.Job]:
        with self.sessions() as session:
            query = select(models.Job).order_by(models.Job.id.desc())
            if not (everyone and is_operator(session, identity)):
                query = query.where(models.Job.owner == identity.name)
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
        except BackendUnavailable as error:
            raise JobError(503, str(error)) from None
        except BackendRejected as error:
            raise JobError(409, str(error)) from None
        with transaction(self.sessions) as session:
            row = session.get(models.Job, job_id)
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
            active = {
                row.backend_job_id: row.id
                for row in session.scalars(
                    select(models.Job).where(
                        models.Job.backend == self.backend.name,
                        models.Job.state.in_([s.value for s in ACTIVE_STATES]),
                        models.Job.backend_job_id.is_not(None),
                    )
                )
            }
        if not active:
            return 0
        self.backend_calls += 1
        observations = self.backend.poll(list(active))
        changed = 0
        with transaction(self.sessions) as session:
            for backend_id, observation in observations.items():
                job = session.get(models.Job, active[backend_id])
                if job is None:
                    continue
                before = (job.state, job.started_at, job.reason)
                job.state = observation.state.value
                job.reason = observation.reason
                if observation.started_at and job.started_at is None:
                    job.started_at = observation.started_at
                if not observation.state.active:
                    job.exit_code = observation.exit_code
                    job.ended_at = observation.ended_at or self.clock()
                    if job.gpu_hours_charged is None:
                        job.gpu_hours_charged = quota.elapsed_gpu_hours(
                            job.total_gpus, _aware(job.started_at), _aware(job.ended_at)
                        )
                    log.info(
                        "Job %s ended %s (exit %s), charged %.4f GPU-hours",
                        job.id,
                        job.state,
                        job.exit_code,
                        job.gpu_hours_charged,
                    )
                if (job.state, job.started_at, job.reason) != before:
                    changed += 1
        return changed

    def settle_interrupted_submissions(self) -> None:
        """Jobs recorded but never confirmed by the backend (the portal stopped between the
        two steps): adopt the backend's job if it has one with our id, else mark it FAILED,
        so it neither hangs in PENDING nor holds quota."""
        cutoff = self.clock() - SUBMISSION_GRACE
        with self.sessions() as session:
            stale = {
                row.uid: row.id
                for row in session.scalars(
                    select(models.Job).where(
                        models.Job.backend == self.backend.name,
                        models.Job.backend_job_id.is_(None),
                        models.Job.state.in_([s.value for s in ACTIVE_STATES]),
                    )
                )
                if _aware(row.submitted_at) < cutoff
            }
        if not stale:
            return
        self.backend_calls += 1
        found = self.backend.find(list(stale))
        with transaction(self.sessions) as session:
            for uid, job_id in stale.items():
                job = session.get(models.Job, job_id)
                if uid in found:
                    job.backend_job_id = found[uid]
                    job.reason = ""
                else:
                    job.state = JobState.FAILED.value
                    job.reason = "the submission was interrupted and never reached the backend"
                    job.ended_at = self.clock()
                    job.gpu_hours_charged = 0.0
                log.warning("Interrupted submission %s settled: %s", uid, job.reason or "adopted")


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
