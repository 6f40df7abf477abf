"""GPU-hours used and GPUs in use per project, from the session records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.portal import models
from aitestbed.portal.export import csv_text

ACTIVE_JOB_STATES = ("PENDING", "RUNNING")  # aitestbed.portal.jobs.states.ACTIVE_STATES


@dataclass(frozen=True)
class ProjectUsage:
    gpu_hours_used: float = 0.0
    gpus_in_use: float = 0.0
    running_sessions: int = 0


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def session_gpu_hours(record: models.SessionRecord, now: datetime) -> float:
    """Charged GPU-hours: closed sessions as recorded, running ones up to ``now``."""
    if record.gpu_hours is not None:
        return record.gpu_hours
    end = as_utc(record.stopped_at) if record.stopped_at else now
    seconds = max((end - as_utc(record.started_at)).total_seconds(), 0.0)
    return record.gpus * seconds / 3600


def usage_by_project(
    session: Session, project_ids: Iterable[int], now: datetime
) -> dict[int, ProjectUsage]:
    """Sessions and batch jobs together: finished jobs count with the GPU-hours charged
    when they ended; active jobs (pending or running) hold their GPUs."""
    ids = list(project_ids)
    totals: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    if ids:
        records = session.scalars(
            select(models.SessionRecord).where(models.SessionRecord.project_id.in_(ids))
        )
        for record in records:
            entry = totals[record.project_id]
            entry[0] += session_gpu_hours(record, now)
            if record.stopped_at is None:
                entry[1] += record.gpus
                entry[2] += 1
        jobs = session.execute(
            select(
                models.Job.project_id,
                models.Job.state,
                models.Job.nodes * models.Job.gpus_per_node,
                models.Job.gpu_hours_charged,
            ).where(models.Job.project_id.in_(ids))
        )
        for project_id, state, gpus, charged in jobs:
            entry = totals[project_id]
            if state in ACTIVE_JOB_STATES:
                entry[1] += gpus
            else:
                entry[0] += charged or 0.0
    return {pid: ProjectUsage(*totals[pid]) if pid in totals else ProjectUsage() for pid in ids}


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


def usage_csv(rows: list[dict]) -> str:
    return csv_text(rows, CSV_COLUMNS)
