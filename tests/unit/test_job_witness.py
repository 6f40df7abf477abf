"""The backend as the witness of a job: an id it reused is not taken for a job it lost, and
a job it lost ends FAILED after the grace time (gateway side, with a scripted backend; the
real Slurm case is in tests/faults/test_slurm_faults.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aitestbed.portal.jobs.backend import Observation
from aitestbed.portal.jobs.gateway import LOST_REASON, SUBMISSION_GRACE
from aitestbed.portal.jobs.states import JobState
from fastapi.testclient import TestClient

from tests.jobs_support import JobsClient, make_app
from tests.unit.test_job_datasets import RecordingBackend, _prepare


class ForgetfulBackend(RecordingBackend):
    """Reports what ``seen`` holds (backend id -> (uid in its comment, state))."""

    remembers_finished_jobs = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, tuple[str, JobState]] = {}

    def poll(self, job_ids):
        return {
            i: Observation(self.seen[i][1], uid=self.seen[i][0]) for i in job_ids if i in self.seen
        }


def test_a_reused_id_is_not_adopted_and_a_lost_job_fails_after_the_grace_time(
    tmp_path, settings_doc, monkeypatch
):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", f"sqlite:///{tmp_path / 'portal.sqlite'}")
    path = _prepare(tmp_path, settings_doc)
    backend = ForgetfulBackend()
    offset = [timedelta()]
    app, gateway, engine = make_app(
        path, backend, ["alice"], clock=lambda: datetime.now(UTC) + offset[0]
    )
    with TestClient(app) as client:
        alice = JobsClient(client, "t-alice")
        lost = alice.submit(project="acme-vision", command=["true"]).json()
        kept = alice.submit(project="acme-vision", command=["true"]).json()
        # the backend lost job "1", then gave "1" to a stranger; job "2" runs
        backend.seen = {
            "1": ("stranger0000", JobState.RUNNING),
            "2": (kept["uid"], JobState.RUNNING),
        }
        gateway.poll_once()
        assert alice.get(lost["id"]).json()["state"] == "PENDING"
        assert alice.get(kept["id"]).json()["state"] == "RUNNING"
        offset[0] = SUBMISSION_GRACE - timedelta(seconds=5)
        gateway.poll_once()
        assert alice.get(lost["id"]).json()["state"] == "PENDING"  # not yet
        offset[0] = SUBMISSION_GRACE + timedelta(seconds=1)
        gateway.poll_once()
        failed = alice.get(lost["id"]).json()
        assert (failed["state"], failed["reason"]) == ("FAILED", LOST_REASON)
        assert alice.get(kept["id"]).json()["state"] == "RUNNING"
        # a backend that forgets finished jobs proves nothing by missing one
        backend.remembers_finished_jobs = False
        backend.seen = {}
        offset[0] = 10 * SUBMISSION_GRACE
        gateway.poll_once()
        gateway.poll_once()
        assert alice.get(kept["id"]).json()["state"] == "RUNNING"
    engine.dispose()
