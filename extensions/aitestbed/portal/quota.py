"""GPU-hour quota: the pure rules admission and charging share (jobs and sessions).

Admission reserves the most a request can cost (GPUs x time limit) against what is left of
the project's budget, and counts the GPUs the project holds right now against its cap.
Charging records what was really used: GPUs x elapsed wall time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Allocation:
    gpu_hours_budget: float
    max_concurrent_gpus: int


@dataclass(frozen=True)
class Usage:
    """What a project has used and holds at the moment of a decision."""

    charged_gpu_hours: float = 0.0  # finished work, really used
    reserved_gpu_hours: float = 0.0  # active work, at most its time limit
    gpus_in_use: float = 0  # active jobs and GPU sessions (a MIG slice is a share of one)


@dataclass(frozen=True)
class Refusal:
    field: str
    reason: str


def requested_gpu_hours(gpus: int, time_limit_minutes: float) -> float:
    return gpus * time_limit_minutes / 60.0


def admit(allocation: Allocation, usage: Usage, gpus: int, time_limit_minutes: float):
    """None when the request fits, else a :class:`Refusal` that says what to change.

    A negative count is refused here too, whatever the schema and the spec let through:
    admitted, it would lower the GPUs the project holds and let a later job past the cap.
    """
    if gpus < 0:
        return Refusal(
            "gpus_per_node",
            f"a job cannot ask for a negative number of GPUs ({gpus}); ask for 0 or more.",
        )
    if gpus == 0:
        return None
    if usage.gpus_in_use + gpus > allocation.max_concurrent_gpus + 1e-9:
        return Refusal(
            "gpus_per_node",
            f"the project may use {allocation.max_concurrent_gpus} GPUs at a time and holds "
            f"{usage.gpus_in_use:g}; ask for fewer GPUs or wait for a job to end.",
        )
    left = allocation.gpu_hours_budget - usage.charged_gpu_hours - usage.reserved_gpu_hours
    wanted = requested_gpu_hours(gpus, time_limit_minutes)
    if wanted > left + 1e-9:
        return Refusal(
            "time_limit_minutes",
            f"the job may use {wanted:g} GPU-hours (GPUs x time limit) but the project has "
            f"{max(left, 0):g} left; shorten the time limit or use fewer GPUs.",
        )
    return None


def elapsed_gpu_hours(gpus: int, started: datetime | None, ended: datetime | None) -> float:
    """GPU-hours really used by a job that ran from ``started`` to ``ended``."""
    if gpus <= 0 or started is None or ended is None or ended <= started:
        return 0.0
    return gpus * (ended - started).total_seconds() / 3600.0
