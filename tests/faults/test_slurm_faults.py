"""kill -9 of slurmrestd and slurmctld at chosen points of a submission, on a real Slurm.

Points: before the submit call, while it is in flight (slurmrestd has not forwarded it yet),
and after Slurm accepted it (before the portal heard the answer). A proxy in front of
slurmrestd (``tests.slurm.rest_proxy``) gives the test those moments. After each fault the
daemon is restarted, the poller runs, and the invariant is checked:

- every job of the test's user in Slurm has exactly one portal record (by the uid in its
  comment), and every active record exactly one Slurm job, the one it names;
- while a daemon is down the user gets a 503 with a sentence that says what to do;
- a retry with the same idempotency key never makes a second Slurm job.

Bounded: six cases, about a minute and a half in all on two cores (the controller-down
cases wait for slurmrestd's own connect retries, about 9 s each).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aitestbed.portal import models
from aitestbed.portal.jobs.backend import BackendUnavailable
from aitestbed.portal.jobs.gateway import LOST_REASON, SUBMISSION_GRACE
from aitestbed.portal.jobs.slurm import CONTROLLER_DOWN, UNAVAILABLE, UNCERTAIN, SlurmBackend
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.jobs_support import JobsClient, make_app, wait_for_state
from tests.slurm.conftest import UNIX_USERS, cluster_users, slurm_cluster  # noqa: F401
from tests.slurm.portal_support import portal_settings, slurm_jobs_by_uid
from tests.slurm.rest_proxy import RestProxy

pytestmark = pytest.mark.slurm

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
USER = UNIX_USERS["alice"]


class ShiftedClock:
    """The gateway's clock, moved forward by a test to pass the submission grace time."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module")
def faults(slurm_cluster, cluster_users, tmp_path_factory):  # noqa: F811
    proxy = RestProxy(slurm_cluster.rest_url, hold_seconds=60).start()
    path = portal_settings(
        slurm_cluster,
        cluster_users,
        tmp_path_factory.mktemp("slurm-faults"),
        rest_url=proxy.url,
        # longer than slurmrestd's own retries to reach a stopped slurmctld (about 9 s)
        request_timeout_seconds=30,
    )
    slurm = load_settings(path).jobs.slurm
    proxied = SlurmBackend(slurm)
    direct = SlurmBackend(replace(slurm, rest_url=slurm_cluster.rest_url))
    clock = ShiftedClock()
    app, gateway, engine = make_app(path, proxied, ["alice"], clock=clock)
    with TestClient(app) as client:
        yield {
            "alice": JobsClient(client, "t-alice"),
            "gateway": gateway,
            "engine": engine,
            "proxy": proxy,
            "proxied": proxied,
            "direct": direct,
            "clock": clock,
        }
    engine.dispose()
    proxy.stop()


@pytest.fixture(autouse=True)
def clean(faults, slurm_cluster):  # noqa: F811
    faults["proxy"].reset()
    faults["gateway"].backend = faults["proxied"]
    yield
    faults["proxy"].reset()
    for name in ("slurmctld", "slurmrestd"):
        if slurm_cluster.processes[name].poll() is not None:
            slurm_cluster.restart(name)  # a failed test leaves the cluster whole
    faults["gateway"].backend = faults["proxied"]


def records(engine) -> list[models.Job]:
    with engine.connect() as connection:
        return list(connection.execute(select(models.Job).where(models.Job.owner == "alice")))


def assert_one_to_one(faults, cluster) -> None:
    """Every job of the user in Slurm has exactly one record, every active record exactly
    one Slurm job (the one it names)."""
    rows = records(faults["engine"])
    by_uid = {row.uid: row for row in rows}
    assert len(by_uid) == len(rows)
    in_slurm = slurm_jobs_by_uid(cluster, USER)
    for uid, job_ids in in_slurm.items():
        assert uid in by_uid, f"Slurm job {job_ids} has no record"
        assert job_ids == [by_uid[uid].backend_job_id], (uid, job_ids)
    for row in rows:
        if row.state not in FINAL:
            assert in_slurm.get(row.uid) == [row.backend_job_id], (row.uid, row.state)


def finish(faults, cluster, job_id) -> None:
    """Cancel the test's job and record its end, so the next test starts from rest."""
    alice, gateway = faults["alice"], faults["gateway"]
    assert alice.cancel(job_id).status_code == 200
    wait_for_state(gateway, alice, job_id, FINAL, timeout=60)
    assert_one_to_one(faults, cluster)


def submit(faults, key: str):
    return faults["alice"].submit(
        key=key, name=key, project="acme-vision", command=["sleep", "300"]
    )


@pytest.mark.parametrize("daemon", ["slurmrestd", "slurmctld"])
def test_killed_before_the_submit_call(faults, slurm_cluster, daemon):  # noqa: F811
    """Nothing reached Slurm: a 503 that says so, no record; the retry makes one job."""
    faults["gateway"].backend = faults["direct"]  # nothing in between: refused connections
    slurm_cluster.kill(daemon)
    down = submit(faults, f"before-{daemon}")
    assert down.status_code == 503 and down.headers["Retry-After"] == "30"
    assert down.json()["detail"] == (UNAVAILABLE if daemon == "slurmrestd" else CONTROLLER_DOWN)
    assert all(row.name != f"before-{daemon}" for row in records(faults["engine"]))
    slurm_cluster.restart(daemon)
    again = submit(faults, f"before-{daemon}")
    assert again.status_code == 201, again.text
    job = again.json()
    assert slurm_jobs_by_uid(slurm_cluster, USER)[job["uid"]] == [job["backend_job_id"]]
    assert_one_to_one(faults, slurm_cluster)
    finish(faults, slurm_cluster, job["id"])


def test_slurmrestd_killed_while_the_submission_is_in_flight(faults, slurm_cluster):  # noqa: F811
    """The request never reached slurmrestd, but the portal cannot know: the record waits
    ("uncertain"), the poller looks it up, and after the grace time it is FAILED with a
    reason; no Slurm job ever appears and no quota stays held."""
    proxy, gateway, alice = faults["proxy"], faults["gateway"], faults["alice"]
    proxy.before_submit = lambda: slurm_cluster.kill("slurmrestd")
    lost = submit(faults, "inflight-rest")
    assert lost.status_code == 503
    [row] = [r for r in records(faults["engine"]) if r.name == "inflight-rest"]
    assert lost.json()["detail"] == f"{UNCERTAIN} Its job id is {row.id}."
    with pytest.raises(BackendUnavailable):
        gateway.poll_once()  # still down: nothing is decided
    slurm_cluster.restart("slurmrestd")
    proxy.reset()
    gateway.poll_once()  # not in Slurm, but an answer could still be on its way: kept
    assert alice.get(row.id).json()["state"] == "PENDING"
    faults["clock"].offset = SUBMISSION_GRACE + timedelta(seconds=1)
    try:
        gateway.poll_once()
    finally:
        faults["clock"].offset = timedelta()
    failed = alice.get(row.id).json()
    assert (failed["state"], failed["gpu_hours_charged"]) == ("FAILED", 0.0)
    assert "never reached the batch system" in failed["reason"]
    retried = submit(faults, "inflight-rest")
    assert (retried.status_code, retried.json()["id"]) == (200, row.id)
    assert row.uid not in slurm_jobs_by_uid(slurm_cluster, USER)
    assert proxy.submits() == []  # the retry did not submit again
    assert_one_to_one(faults, slurm_cluster)


def test_slurmctld_killed_while_the_submission_is_in_flight(faults, slurm_cluster):  # noqa: F811
    """slurmrestd gets the request but cannot reach slurmctld: a clean 503, no record."""
    proxy = faults["proxy"]
    proxy.before_submit = lambda: slurm_cluster.kill("slurmctld")
    down = submit(faults, "inflight-ctld")
    assert (down.status_code, down.json()["detail"]) == (503, CONTROLLER_DOWN)
    assert all(r.name != "inflight-ctld" for r in records(faults["engine"]))
    slurm_cluster.restart("slurmctld")
    proxy.reset()
    again = submit(faults, "inflight-ctld")
    assert again.status_code == 201, again.text
    assert_one_to_one(faults, slurm_cluster)
    finish(faults, slurm_cluster, again.json()["id"])


def test_slurmrestd_killed_after_slurm_accepted_the_job(faults, slurm_cluster):  # noqa: F811
    """Slurm has the job, the portal never heard: the record is kept, answers stay clear
    while slurmrestd is down, and the poller adopts the job once it is back."""
    proxy, gateway, alice = faults["proxy"], faults["gateway"], faults["alice"]
    proxy.after_submit = lambda: slurm_cluster.kill("slurmrestd")
    proxy.submit_answer = "hang-up"
    lost = submit(faults, "accepted-rest")
    assert lost.status_code == 503
    [row] = [r for r in records(faults["engine"]) if r.name == "accepted-rest"]
    assert lost.json()["detail"] == f"{UNCERTAIN} Its job id is {row.id}."
    proxy.submit_answer = "relay"
    while_down = submit(faults, "accepted-rest")  # the look-up fails: the record as it is
    assert (while_down.status_code, while_down.json()["id"]) == (200, row.id)
    assert while_down.json()["reason"].startswith("submission uncertain")
    slurm_cluster.restart("slurmrestd")
    gateway.poll_once()
    adopted = alice.get(row.id).json()
    [slurm_id] = slurm_jobs_by_uid(slurm_cluster, USER)[row.uid]
    assert adopted["backend_job_id"] == slurm_id
    assert_one_to_one(faults, slurm_cluster)
    finish(faults, slurm_cluster, row.id)


def test_slurmctld_killed_after_slurm_accepted_the_job(faults, slurm_cluster):  # noqa: F811
    """The portal has the answer; slurmctld dies right after, maybe before it saved the
    job. While it is down the poller concludes nothing and new submissions get a clear 503.
    After the restart the job is either there (saved) or lost: then a new job may get its
    id, which must not be taken for the lost one, and the lost record ends FAILED."""
    proxy, gateway, alice = faults["proxy"], faults["gateway"], faults["alice"]
    proxy.after_submit = lambda: slurm_cluster.kill("slurmctld")
    made = submit(faults, "accepted-ctld")
    assert made.status_code == 201, made.text
    job = made.json()
    proxy.reset()
    with pytest.raises(BackendUnavailable) as unavailable:
        gateway.poll_once()  # slurmrestd's "Unspecified error": no job is concluded gone
    assert str(unavailable.value) == (
        "The batch system could not answer (Unspecified error); try again in a few minutes."
    )
    assert alice.get(job["id"]).json()["state"] == "PENDING"
    down = alice.submit(key="ctld-down", project="acme-vision", command=["true"])
    assert (down.status_code, down.json()["detail"]) == (503, CONTROLLER_DOWN)
    slurm_cluster.restart("slurmctld")
    if job["uid"] in slurm_jobs_by_uid(slurm_cluster, USER):  # slurmctld saved it in time
        running = wait_for_state(gateway, alice, job["id"], ("RUNNING",), timeout=60)
        assert running["backend_job_id"] == job["backend_job_id"]
        assert_one_to_one(faults, slurm_cluster)
        finish(faults, slurm_cluster, job["id"])
        return
    # Lost: the next job may get the same Slurm id; the lost record must not adopt it.
    newcomer = submit(faults, "after-ctld-loss").json()
    wait_for_state(gateway, alice, newcomer["id"], ("RUNNING",), timeout=60)
    assert alice.get(job["id"]).json()["state"] == "PENDING"  # not the newcomer's RUNNING
    faults["clock"].offset = SUBMISSION_GRACE + timedelta(seconds=1)
    try:
        gateway.poll_once()
    finally:
        faults["clock"].offset = timedelta()
    lost = alice.get(job["id"]).json()
    assert (lost["state"], lost["reason"]) == ("FAILED", LOST_REASON)
    assert alice.get(newcomer["id"]).json()["state"] == "RUNNING"
    assert_one_to_one(faults, slurm_cluster)
    finish(faults, slurm_cluster, newcomer["id"])
