"""Closing usage records and charging them to the project ledger, each exactly once.

Every place that ends a piece of work goes through here: a session stopped by the hub or
closed by the reconciler, a job the poller sees end, a submission settled as never having
reached the backend. A close is a conditional update (``WHERE stopped_at IS NULL`` for a
session, ``WHERE state IN (active)`` for a job); only when it changed a row are its
GPU-hours added to the project's running total, in the same transaction. So two closers
racing (the hub's stop and the reconciler, two pollers) charge once, and the total always
equals the sum over the closed records (``tests/unit/test_ledger.py`` recomputes it).

Callers that close many records add the charges up per project and apply them at the end,
in project order, so that two such transactions lock ledger rows in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aitestbed.portal import models
from aitestbed.portal.usage import ACTIVE_JOB_STATES, elapsed_session_hours


def _insert(session: Session):
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(models.ProjectLedger)


def charge(session: Session, charges: Mapping[int, float]) -> None:
    """Add GPU-hours of closed work to the projects' running totals (in project order)."""
    for project_id in sorted(charges):
        hours = float(charges[project_id])
        statement = _insert(session).values(
            project_id=project_id, closed_gpu_hours=hours, admissions=0
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[models.ProjectLedger.project_id],
                set_={
                    "closed_gpu_hours": models.ProjectLedger.closed_gpu_hours
                    + statement.excluded.closed_gpu_hours
                },
            )
        )


def close_session(session: Session, record_id: int, now: datetime) -> tuple[int, float] | None:
    """Close one open session record, charging it up to ``now``; returns (project id,
    GPU-hours) when this call closed it, None when it was already closed (or is unknown).
    The caller charges the result (:func:`charge`) in the same transaction."""
    row = session.execute(
        select(
            models.SessionRecord.project_id,
            models.SessionRecord.gpus,
            models.SessionRecord.started_at,
        ).where(models.SessionRecord.id == record_id)
    ).first()
    if row is None:
        return None
    hours = elapsed_session_hours(row.gpus, row.started_at, now)
    closed = session.execute(
        update(models.SessionRecord)
        .where(models.SessionRecord.id == record_id, models.SessionRecord.stopped_at.is_(None))
        .values(stopped_at=now, gpu_hours=hours)
        .execution_options(synchronize_session=False)
    )
    return (row.project_id, hours) if closed.rowcount == 1 else None


def stop_session(session: Session, record_id: int, now: datetime) -> bool:
    """Close and charge one session record; False when it was closed already."""
    closed = close_session(session, record_id, now)
    if closed is not None:
        charge(session, {closed[0]: closed[1]})
    return closed is not None


def close_sessions(session: Session, record_ids: list[int], now: datetime) -> list[int]:
    """Close and charge many session records; returns the ids this call closed."""
    charges: dict[int, float] = defaultdict(float)
    done = []
    for record_id in sorted(record_ids):
        closed = close_session(session, record_id, now)
        if closed is not None:
            charges[closed[0]] += closed[1]
            done.append(record_id)
    charge(session, charges)
    return done


def end_job(
    session: Session, job_id: int, charged: float, **values: Any
) -> tuple[int, float] | None:
    """Move an active job to its final state (``values``: state, ended_at, ...) with
    ``charged`` GPU-hours; returns (project id, GPU-hours) when this call ended it, None
    when it had ended already. The caller charges the result in the same transaction."""
    project_id = session.scalar(select(models.Job.project_id).where(models.Job.id == job_id))
    if project_id is None:
        return None
    ended = session.execute(
        update(models.Job)
        .where(models.Job.id == job_id, models.Job.state.in_(ACTIVE_JOB_STATES))
        .values(gpu_hours_charged=charged, **values)
        .execution_options(synchronize_session=False)
    )
    return (project_id, charged) if ended.rowcount == 1 else None


def update_active_job(session: Session, job_id: int, **values: Any) -> int:
    """Record a change of a job that is still active (state, start, reason); 0 when it has
    ended meanwhile (its end, already charged, stays)."""
    result = session.execute(
        update(models.Job)
        .where(models.Job.id == job_id, models.Job.state.in_(ACTIVE_JOB_STATES))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
