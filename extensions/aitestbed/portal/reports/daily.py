"""GPU-hours per day: pure splitting of GPU intervals into UTC days, and the query behind it.

A session or a job holds ``gpus`` GPUs from ``start`` to ``end`` (now, while it runs); each
day gets the part of that interval inside it. Days are UTC days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aitestbed.portal import models
from aitestbed.portal.usage import as_utc


@dataclass(frozen=True)
class GpuInterval:
    start: datetime
    end: datetime
    gpus: float


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def gpu_hours_per_day(
    intervals: Iterable[GpuInterval], first_day: date, days: int
) -> list[tuple[date, float]]:
    """``days`` consecutive days from ``first_day``, each with the GPU-hours used in it."""
    window_start = _day_start(first_day)
    totals = [0.0] * days
    for interval in intervals:
        if interval.gpus <= 0 or interval.end <= interval.start:
            continue
        begin = max(interval.start, window_start)
        index = (begin.date() - first_day).days
        while index < days and begin < interval.end:
            day_end = _day_start(first_day + timedelta(days=index + 1))
            stop = min(day_end, interval.end)
            if stop > begin:
                totals[index] += interval.gpus * (stop - begin).total_seconds() / 3600
            begin, index = day_end, index + 1
    return [(first_day + timedelta(days=i), round(totals[i], 4)) for i in range(days)]


def project_intervals(
    session: Session, project_ids: list[int], since: datetime, now: datetime
) -> list[GpuInterval]:
    """The GPU intervals of sessions and started jobs of the projects that reach ``since``."""
    if not project_ids:
        return []
    found: list[GpuInterval] = []
    records = session.execute(
        select(
            models.SessionRecord.started_at,
            models.SessionRecord.stopped_at,
            models.SessionRecord.gpus,
        ).where(
            models.SessionRecord.project_id.in_(project_ids),
            models.SessionRecord.gpus > 0,
            or_(
                models.SessionRecord.stopped_at.is_(None), models.SessionRecord.stopped_at >= since
            ),
        )
    )
    for started, stopped, gpus in records:
        found.append(GpuInterval(as_utc(started), as_utc(stopped) if stopped else now, gpus))
    jobs = session.execute(
        select(
            models.Job.started_at,
            models.Job.ended_at,
            models.Job.nodes * models.Job.gpus_per_node,
        ).where(
            models.Job.project_id.in_(project_ids),
            models.Job.started_at.is_not(None),
            models.Job.nodes * models.Job.gpus_per_node > 0,
            or_(models.Job.ended_at.is_(None), models.Job.ended_at >= since),
        )
    )
    for started, ended, gpus in jobs:
        found.append(GpuInterval(as_utc(started), as_utc(ended) if ended else now, float(gpus)))
    return found
