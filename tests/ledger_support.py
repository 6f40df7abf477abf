"""The usage ledger checked against the history, recomputed the way usage was computed
before the ledger (every record loaded and summed in Python)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest
from aitestbed.portal import models
from aitestbed.portal.db import session_factory
from aitestbed.portal.usage import as_utc, usage_by_project
from sqlalchemy import select


def recomputed_usage(engine, now: datetime) -> dict[int, tuple[float, float, int]]:
    """Usage as it was computed before the ledger: every record of the history loaded and
    summed in Python. (GPU-hours used, GPUs in use, running sessions) per project id."""
    totals: dict[int, list] = defaultdict(lambda: [0.0, 0.0, 0])
    with session_factory(engine)() as session:
        for record in session.scalars(select(models.SessionRecord)):
            entry = totals[record.project_id]
            if record.stopped_at is None:
                seconds = (now - as_utc(record.started_at)).total_seconds()
                entry[0] += record.gpus * max(seconds, 0) / 3600
                entry[1] += record.gpus
                entry[2] += 1
            else:
                entry[0] += record.gpu_hours
        for job in session.scalars(select(models.Job)):
            entry = totals[job.project_id]
            if job.state in ("PENDING", "RUNNING"):
                entry[1] += max(job.nodes * job.gpus_per_node, 0)
            else:
                entry[0] += job.gpu_hours_charged or 0.0
    return {pid: tuple(values) for pid, values in totals.items()}


def assert_ledger_matches_history(engine) -> None:
    now = datetime.now(UTC)
    expected = recomputed_usage(engine, now)
    with session_factory(engine)() as session:
        ids = list(session.scalars(select(models.Project.id)))
        usage = usage_by_project(session, ids, now)
    for pid in ids:
        hours, gpus, running = expected.get(pid, (0.0, 0.0, 0))
        got = usage[pid]
        assert (got.gpus_in_use, got.running_sessions) == (gpus, running), pid
        assert got.gpu_hours_used == pytest.approx(hours, rel=1e-9, abs=1e-9), pid
