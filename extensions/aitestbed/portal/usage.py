"""GPU-hours used and GPUs in use per project, read from the ledger and the open work.

What a project has used is the running total of its closed work (``project_ledger``, kept
by :mod:`aitestbed.portal.ledger`) plus what its open work has used so far; what it holds is
the GPUs of its open sessions and active jobs. Both read only the open rows, through the
indexes on (project, stopped_at), (stopped_at, flavor) and (project, state), so the cost
does not grow with the project's history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from aitestbed.portal import models

ACTIVE_JOB_STATES = ("PENDING", "RUNNING")  # aitestbed.portal.jobs.states.ACTIVE_STATES


@dataclass(frozen=True)
class ProjectUsage:
    gpu_hours_used: float = 0.0  # closed work as charged, open sessions up to now
    gpus_in_use: float = 0.0  # open sessions and active jobs
    running_sessions: int = 0
    reserved_gpu_hours: float = 0.0  # active jobs: GPUs x time limit (not yet charged)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def elapsed_session_hours(gpus: float, started_at: datetime, end: datetime) -> float:
    """GPU-hours of a session that ran from ``started_at`` to ``end`` (never negative)."""
    seconds = max((as_utc(end) - as_utc(started_at)).total_seconds(), 0.0)
    return max(gpus, 0.0) * seconds / 3600


def session_gpu_hours(record: models.SessionRecord, now: datetime) -> float:
    """Charged GPU-hours: closed sessions as recorded, running ones up to ``now``."""
    if record.gpu_hours is not None:
        return record.gpu_hours
    return elapsed_session_hours(record.gpus, record.started_at, record.stopped_at or now)


def job_gpus():
    """A job's GPUs as SQL, never below 0 (a negative count must not free GPUs)."""
    gpus = models.Job.nodes * models.Job.gpus_per_node
    return case((gpus > 0, gpus), else_=0)


def usage_by_project(
    session: Session, project_ids: Iterable[int], now: datetime
) -> dict[int, ProjectUsage]:
    """Sessions and batch jobs together: finished work counts with the GPU-hours charged
    when it closed (the ledger); active jobs (pending or running) hold their GPUs and
    reserve their time limit; open sessions hold their GPUs and have used them up to now."""
    ids = sorted(set(project_ids))
    if not ids:
        return {}
    closed = dict(
        session.execute(
            select(models.ProjectLedger.project_id, models.ProjectLedger.closed_gpu_hours).where(
                models.ProjectLedger.project_id.in_(ids)
            )
        ).all()
    )
    hours = {pid: float(closed.get(pid) or 0.0) for pid in ids}
    held = dict.fromkeys(ids, 0.0)
    running = dict.fromkeys(ids, 0)
    reserved = dict.fromkeys(ids, 0.0)
    open_sessions = session.execute(
        select(
            models.SessionRecord.project_id,
            models.SessionRecord.gpus,
            models.SessionRecord.started_at,
        ).where(models.SessionRecord.project_id.in_(ids), models.SessionRecord.stopped_at.is_(None))
    )
    for project_id, gpus, started_at in open_sessions:
        hours[project_id] += elapsed_session_hours(gpus, started_at, now)
        held[project_id] += max(gpus, 0.0)
        running[project_id] += 1
    gpus = job_gpus()
    active_jobs = session.execute(
        select(
            models.Job.project_id,
            func.coalesce(func.sum(gpus), 0),
            func.coalesce(func.sum(gpus * models.Job.time_limit_minutes), 0),
        )
        .where(models.Job.project_id.in_(ids), models.Job.state.in_(ACTIVE_JOB_STATES))
        .group_by(models.Job.project_id)
    )
    for project_id, job_gpus_held, gpu_minutes in active_jobs:
        held[project_id] += float(job_gpus_held)
        reserved[project_id] += float(gpu_minutes) / 60.0
    return {pid: ProjectUsage(hours[pid], held[pid], running[pid], reserved[pid]) for pid in ids}


def open_sessions_by_flavor(session: Session, flavor: str | None = None) -> dict[str, int]:
    """Open session records (of all users) per flavor, or of one flavor."""
    query = (
        select(models.SessionRecord.flavor, func.count())
        .where(models.SessionRecord.stopped_at.is_(None))
        .group_by(models.SessionRecord.flavor)
    )
    if flavor is not None:
        query = query.where(models.SessionRecord.flavor == flavor)
    return dict(session.execute(query).all())


CSV_COLUMNS = (
    "project",
    "title",
    "gpu_hours_budget",
    "gpu_hours_used",
    "max_concurrent_gpus",
    "gpus_in_use",
    "running_sessions",
    "valid_from",
    "valid_until",
)
