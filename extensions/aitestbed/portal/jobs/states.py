"""The six job states users see, and how each backend's own states map onto them."""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"

    @property
    def active(self) -> bool:
        return self in (JobState.PENDING, JobState.RUNNING)


ACTIVE_STATES = (JobState.PENDING, JobState.RUNNING)
FINAL_STATES = tuple(s for s in JobState if not s.active)

# Slurm's base states (job_state in slurmrestd, State in sacct/jobcomp) and their meaning here.
_SLURM = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "REVOKED": JobState.CANCELLED,
    "CANCELLED": JobState.CANCELLED,
    "PREEMPTED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
}


def from_slurm(state: str) -> JobState:
    """Map a Slurm state (``"CANCELLED by 1002"``, ``"RUNNING"``, ...) to a job state.

    An unknown state counts as still running: the poller will look again, and a job is
    never declared finished (and charged) on a word it does not understand.
    """
    word = state.strip().split()[0].upper() if state.strip() else ""
    return _SLURM.get(word, JobState.RUNNING)


def from_exit(returncode: int | None, *, cancelled: bool, timed_out: bool) -> JobState:
    """State of a finished local process."""
    if timed_out:
        return JobState.TIMEOUT
    if cancelled:
        return JobState.CANCELLED
    return JobState.COMPLETED if returncode == 0 else JobState.FAILED


def split_exit_code(value: str) -> tuple[int | None, int | None]:
    """Slurm's ``"3:0"`` (exit status : signal) as two integers."""
    status, _, signal = value.partition(":")
    try:
        return int(status), int(signal) if signal else 0
    except ValueError:
        return None, None
