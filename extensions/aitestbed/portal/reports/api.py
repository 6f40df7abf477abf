"""The month's usage, one row per session and per batch job (operators), as CSV.

The monthly report a data center sends: who used which project's allocation, with which
flavor, from when to when, for how many GPU-hours. A row's GPU-hours are its whole charge;
sessions and jobs are listed by the month they started in.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from aitestbed.portal import models
from aitestbed.portal.usage import as_utc, session_gpu_hours

COLUMNS = (
    "kind",
    "id",
    "project",
    "user",
    "flavor",
    "partition",
    "image",
    "gpus",
    "started_at",
    "ended_at",
    "gpu_hours",
)
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instant of ``YYYY-MM`` and of the month after, in UTC."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=UTC)
    after = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, after


def month_rows(session, start: datetime, after: datetime, now: datetime) -> list[dict]:
    rows: list[dict] = []
    records = session.scalars(
        select(models.SessionRecord)
        .where(models.SessionRecord.started_at >= start, models.SessionRecord.started_at < after)
        .order_by(models.SessionRecord.id)
    )
    for record in records:
        rows.append(
            {
                "kind": "session",
                "id": record.id,
                "project": record.project.slug,
                "user": record.user.name,
                "flavor": record.flavor,
                "image": record.image,
                "gpus": record.gpus,
                "started_at": as_utc(record.started_at).isoformat(),
                "ended_at": as_utc(record.stopped_at).isoformat() if record.stopped_at else "",
                "gpu_hours": round(session_gpu_hours(record, now), 4),
            }
        )
    jobs = session.scalars(
        select(models.Job)
        .where(models.Job.submitted_at >= start, models.Job.submitted_at < after)
        .order_by(models.Job.id)
    )
    for job in jobs:
        rows.append(
            {
                "kind": "job",
                "id": job.id,
                "project": job.project.slug,
                "user": job.owner,
                "partition": job.partition,
                "image": (job.spec or {}).get("image") or "",
                "gpus": job.total_gpus,
                "started_at": as_utc(job.started_at).isoformat() if job.started_at else "",
                "ended_at": as_utc(job.ended_at).isoformat() if job.ended_at else "",
                "gpu_hours": job.gpu_hours_charged if job.gpu_hours_charged is not None else "",
            }
        )
    return rows
