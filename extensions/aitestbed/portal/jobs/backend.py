"""What every job backend offers the gateway (Slurm, local processes; Kubernetes Jobs later).

A backend is a thin adapter: the gateway decides (validation, quota, ownership) and keeps
the record; the backend only starts, observes and stops jobs. ``poll`` gets every active job
of the backend in one call, so the number of calls does not grow with users or jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from aitestbed.portal.jobs.datasets import JobDataset
from aitestbed.portal.jobs.spec import JobSpec
from aitestbed.portal.jobs.states import JobState


class BackendUnavailable(RuntimeError):
    """The backend cannot be reached now (the API answers 503); the message says so."""


class SubmissionUncertain(BackendUnavailable):
    """The request was sent but its answer was lost (a timeout, a connection dropped after
    sending, a failure with no answer from the batch system): the backend may have made the
    job. The gateway keeps the record and finds out by looking its uid up in the backend."""


class BackendRejected(RuntimeError):
    """The backend refused the request (the API answers 422 with its reason)."""


@dataclass(frozen=True)
class Submission:
    uid: str  # the portal's id of the job, also given to the backend (Slurm comment)
    spec: JobSpec
    unix_user: str
    account: str | None
    script: str
    output_path: str
    environment: Mapping[str, str] = field(default_factory=dict)
    # The datasets the user may use in this job (already decided and audited); backends
    # that place them themselves (places_datasets) make them visible to the job.
    datasets: tuple[JobDataset, ...] = ()


@dataclass(frozen=True)
class Observation:
    state: JobState
    exit_code: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str = ""
    #: the portal uid the backend holds for this job (Slurm: from its comment), when known;
    #: the gateway ignores an observation whose uid is not the job's (a reused id)
    uid: str | None = None


class JobBackend(Protocol):
    name: str
    #: whether job output files belong to the job's Unix user (checked before reading logs)
    files_owned_by_user: bool
    #: whether the backend makes ``Submission.datasets`` visible itself (local links);
    #: otherwise the gateway binds them through the script (Slurm)
    places_datasets: bool
    #: whether a job the backend accepted can always be found by ``poll``, finished or not
    #: (Slurm with a job-completion file or accounting); then a job missing there is lost
    remembers_finished_jobs: bool

    def submit(self, submission: Submission) -> str:
        """Start the job; return the backend's id for it."""

    def poll(self, job_ids: Sequence[str]) -> dict[str, Observation]:
        """The state of each job; ids the backend cannot tell anything about are left out."""

    def find(self, uids: Sequence[str]) -> dict[str, str]:
        """Backend ids of jobs the portal submitted with these portal ids (uid -> id)."""

    def cancel(self, job_id: str, unix_user: str) -> None:
        """Stop the job (as ``unix_user``, so the backend checks ownership too)."""

    def user_exists(self, unix_user: str) -> bool:
        """Whether ``unix_user`` has an account where the jobs run."""

    def account_uid(self, unix_user: str) -> int | None:
        """The UID of ``unix_user`` where the jobs run, None when it cannot be known here."""
