"""Submissions that must happen exactly once, or never, checked with Slurm as the witness.

A proxy in front of the real slurmrestd (``rest_proxy``) loses the answer to a submission
that Slurm did receive, and counts every request: a retry with the same key finds the job
by the uid in its comment instead of making a second one, and a user mapped to a system
account never gets a request to slurmrestd at all.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from aitestbed.portal.jobs.slurm import SlurmBackend
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient

from tests.jobs_support import JobsClient, make_app
from tests.slurm.conftest import UNIX_USERS
from tests.slurm.portal_support import count_jobs, portal_settings, slurm_jobs_by_uid
from tests.slurm.rest_proxy import RestProxy
from tests.slurm.slurm_cluster import ensure_user

pytestmark = pytest.mark.slurm

NAMES = ["alice", "mallory", "svc"]
TIMEOUT = 3  # the portal's slurmrestd timeout here; the proxy holds answers longer
SYSTEM_ACCOUNT = "aitb-svc"  # made with a system UID (below 1000), not on the deny list


@pytest.fixture(scope="module")
def proxy(slurm_cluster):
    proxy = RestProxy(slurm_cluster.rest_url, hold_seconds=TIMEOUT + 3).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def portal(slurm_cluster, cluster_users, proxy, tmp_path_factory):
    assert ensure_user(SYSTEM_ACCOUNT, system=True).pw_uid < 1000
    path = portal_settings(
        slurm_cluster,
        cluster_users,
        tmp_path_factory.mktemp("slurm-safety"),
        rest_url=proxy.url,
        overrides={"mallory": "root", "svc": SYSTEM_ACCOUNT},
        members=("mallory", "svc"),
        request_timeout_seconds=TIMEOUT,
    )
    backend = SlurmBackend(load_settings(path).jobs.slurm)
    app, gateway, engine = make_app(path, backend, NAMES)
    with TestClient(app) as client:
        yield {
            "gateway": gateway,
            "engine": engine,
            **{name: JobsClient(client, f"t-{name}") for name in NAMES},
        }
    engine.dispose()


@pytest.fixture(autouse=True)
def fresh_proxy(proxy):
    proxy.reset()
    yield
    proxy.reset()


def cancel_all(cluster, user):
    subprocess.run(["scancel", "-u", user], env=cluster.env(), timeout=30, check=False)


@pytest.mark.parametrize(
    ("answer", "settled_by"), [("hold", "retry"), ("hang-up", "poller")], ids=str
)
def test_a_lost_answer_never_makes_a_second_slurm_job(
    portal, proxy, slurm_cluster, answer, settled_by
):
    """slurmrestd received the submission and Slurm made the job, but its answer never
    reached the portal (timeout, or the connection dropped): one job, one record."""
    alice = portal["alice"]
    key = f"lost-{answer}"
    body = {"name": f"lost-{answer}", "project": "acme-vision", "command": ["sleep", "60"]}
    before = count_jobs(portal["engine"])
    proxy.submit_answer = answer
    first = alice.submit(key=key, **body)
    assert first.status_code == 503, first.text
    [record] = [j for j in alice.list().json() if j["name"] == body["name"]]
    assert first.json()["detail"] == (
        "The batch system did not confirm the submission (no answer in time); the portal "
        "keeps the job and checks whether Slurm received it: retry with the same "
        "idempotency key or look at your job list instead of submitting it again. "
        f"Its job id is {record['id']}."
    )
    assert (record["state"], record["backend_job_id"]) == ("PENDING", None)
    assert proxy.submissions_forwarded == 1
    in_slurm = slurm_jobs_by_uid(slurm_cluster, UNIX_USERS["alice"])[record["uid"]]
    assert len(in_slurm) == 1  # Slurm has the job the portal did not hear about
    proxy.submit_answer = "relay"
    if settled_by == "retry":
        again = alice.submit(key=key, **body)
        assert again.status_code == 200, again.text
        settled = again.json()
    else:
        portal["gateway"].poll_once()
        settled = alice.get(record["id"]).json()
    assert (settled["id"], settled["backend_job_id"]) == (record["id"], in_slurm[0])
    assert settled["reason"] != record["reason"]
    # a later retry is answered from the record; nothing reaches the submit endpoint again
    assert alice.submit(key=key, **body).json()["backend_job_id"] == in_slurm[0]
    assert len(proxy.submits()) == 1 and proxy.submissions_forwarded == 1
    assert slurm_jobs_by_uid(slurm_cluster, UNIX_USERS["alice"])[record["uid"]] == in_slurm
    assert count_jobs(portal["engine"]) == before + 1
    assert alice.cancel(record["id"]).status_code == 200


def test_one_key_with_another_body_is_refused_and_slurm_gets_one_job(portal, slurm_cluster):
    alice = portal["alice"]
    first = alice.submit(key="bound", name="bound", project="acme-vision", command=["sleep", "60"])
    other = alice.submit(key="bound", name="bound", project="acme-vision", command=["sleep", "9"])
    assert (first.status_code, other.status_code) == (201, 422)
    assert other.json()["detail"] == (
        "idempotency_key: The Idempotency-Key 'bound' was already used for job "
        f"{first.json()['id']} with a different request; use a new key for a new job."
    )
    by_uid = slurm_jobs_by_uid(slurm_cluster, UNIX_USERS["alice"])
    assert by_uid[first.json()["uid"]] == [first.json()["backend_job_id"]]
    assert alice.cancel(first.json()["id"]).status_code == 200


def test_system_accounts_never_reach_slurmrestd(portal, proxy, slurm_cluster):
    """root by the deny list, a system UID by min_uid: refused in a burst of 10 each, with
    not one request to slurmrestd and no record."""
    before = count_jobs(portal["engine"])
    expected = {
        "mallory": "The cluster account 'root' is a system account that portal jobs may not "
        "use; ask the operators to map you to a personal account.",
        "svc": f"The cluster account {SYSTEM_ACCOUNT!r} has UID "
        f"{ensure_user(SYSTEM_ACCOUNT).pw_uid}, below the smallest UID portal jobs may use "
        "(1000); ask the operators to map you to a personal account.",
    }

    def submit(name):
        answer = portal[name].submit(project="acme-vision", command=["id"])
        return name, answer.status_code, answer.json()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(submit, ["mallory", "svc"] * 10))
    assert sorted(answers, key=lambda a: a[0]) == sorted(
        [(name, 403, {"detail": expected[name]}) for name in ("mallory", "svc")] * 10,
        key=lambda a: a[0],
    )
    assert proxy.requests == []
    assert count_jobs(portal["engine"]) == before
    assert slurm_jobs_by_uid(slurm_cluster, "root") == {}
    assert slurm_jobs_by_uid(slurm_cluster, SYSTEM_ACCOUNT) == {}
