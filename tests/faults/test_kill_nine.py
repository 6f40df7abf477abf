"""kill -9 of the hub, the portal and the proxy at chosen points of a session start and of a
local job submission, on a real hub + proxy + portal (the embedded default).

After each kill, what a real deployment restarts is restarted: a supervisor (emulated
here) restarts a dead hub; the hub itself restarts its portal service and its proxy. Then
the invariants of ``tests.faults.invariants`` must hold within a bounded time: one open
usage record per running server and none else, one record per job, no orphan process,
no port left bound. The points are chosen by watching from the outside (the record in the
portal's database, the server's process), so each kill lands in the named window.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import pytest
import requests
from aitestbed.hub.demo import start_hub
from aitestbed.hub.project_gate import UNAVAILABLE

from tests.faults.invariants import Deployment
from tests.harness import running_portal, wait_until

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
START = {"project": "acme-vision", "flavor": "cpu-small", "image": "python-cpu"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("kill-nine")
    # The portal reconciles usage with the hub every second (300 s by default).
    env = {"AITESTBED_RECONCILE_SECONDS": "1"}
    with running_portal(workdir, USERS, env=env) as portal:
        deployment = Deployment(portal)
        for name in USERS:
            (deployment.state / "homes" / name).mkdir(parents=True, exist_ok=True)
        deployment.tokens = {name: _token(portal, name) for name in USERS}
        deployment.settle()
        yield deployment
        deployment.engine.dispose()
    # A failed invariant may have left processes the stopped hub did not know about.
    for leftover in deployment.processes():
        with contextlib.suppress(OSError):
            os.kill(leftover.pid, signal.SIGKILL)


def _token(portal, name: str) -> str:
    session = portal.login(name, USERS[name])
    response = session.post(
        f"{portal.url}/hub/api/users/{name}/tokens",
        json={"note": "fault test", "expires_in": 3600},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def _headers(deployment, name: str) -> dict[str, str]:
    return {"Authorization": f"token {deployment.tokens[name]}"}


def _in_background(call) -> dict:
    """Run ``call`` in a thread; the dict gets its ``result`` or ``error``."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as error:  # the process it talks to may be killed under it
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def _start_server(deployment, name: str) -> dict:
    url = f"{deployment.portal.hub_api}/users/{name}/server"
    return _in_background(
        lambda: requests.post(url, json=START, headers=_headers(deployment, name), timeout=120)
    )


def _stop_server(deployment, name: str) -> None:
    requests.delete(
        f"{deployment.portal.hub_api}/users/{name}/server",
        headers=_headers(deployment, name),
        timeout=60,
    )
    wait_until(
        lambda: (name, "") not in deployment.hub_servers(), timeout=60, what=f"{name} stopped"
    )


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _kill_hub_and_supervise(deployment) -> list[int]:
    """kill -9 the hub; return the pids of the services it had started (they must end on
    their own); then do what a supervisor does: start the hub again."""
    portal = deployment.portal
    services = [p.pid for p in deployment.processes() if p.kind in ("portal", "culler")]
    _kill(portal.process.pid)
    portal.process.wait()
    wait_until(
        lambda: all(_gone(pid) for pid in services),
        timeout=20,
        what="the killed hub's portal and culler to end with it",
    )
    with portal.log_path.open("ab") as log:
        portal.process = start_hub(
            portal.settings_path, cwd=portal.settings_path.parent, stdout=log, env=portal.env
        )
    portal.wait_ready()
    return services


def _one(deployment, kind: str):
    found = [p for p in deployment.processes() if p.kind == kind]
    assert len(found) == 1, [p.command for p in found]
    return found[0]


def test_hub_killed_after_the_usage_record_while_a_job_runs(deployment):
    """The record exists, the server is not up yet; a job runs. The job outlives the hub
    (and the portal that ends with it) and the restarted portal sees it finish."""
    portal = deployment.portal
    job = requests.post(
        f"{portal.portal_url}api/jobs",
        json={"project": "acme-vision", "command": ["sleep", "12"]},
        headers=_headers(deployment, "alice"),
        timeout=60,
    )
    assert job.status_code == 201, job.text
    job_url = f"{portal.portal_url}api/jobs/{job.json()['id']}"
    wait_until(
        lambda: (
            requests.get(job_url, headers=_headers(deployment, "alice"), timeout=10).json()["state"]
            == "RUNNING"
        ),
        timeout=60,
        what="the job to run",
    )
    _start_server(deployment, "alice")
    wait_until(
        lambda: ("alice", "") in deployment.open_records(), timeout=60, what="the usage record"
    )
    _kill_hub_and_supervise(deployment)
    deployment.settle()
    done = wait_until(
        lambda: (
            body
            if (
                body := requests.get(
                    job_url, headers=_headers(deployment, "alice"), timeout=10
                ).json()
            )["state"]
            not in ("PENDING", "RUNNING")
            else None
        ),
        timeout=90,
        what="the job to end",
    )
    assert (done["state"], done["exit_code"], done["reason"]) == ("COMPLETED", 0, "")
    deployment.settle()


def test_hub_killed_while_the_server_starts(deployment):
    """The single-user process exists, the hub has not seen it answer yet."""

    def starting() -> bool:
        serving = any(
            p.kind == "server" and p.environ.get("JUPYTERHUB_USER") == "bob"
            for p in deployment.processes()
        )
        return serving and not deployment.hub_servers().get(("bob", ""), {}).get("ready")

    _start_server(deployment, "bob")
    wait_until(starting, timeout=60, interval=0.05, what="bob's server process")
    _kill_hub_and_supervise(deployment)
    deployment.settle()


def test_hub_killed_before_admission(deployment):
    """The start request has just reached the hub; nothing is recorded yet."""
    _stop_server(deployment, "alice")
    deployment.settle()
    request = _start_server(deployment, "alice")
    wait_until(
        lambda: ("alice", "") in deployment.hub_servers(),
        timeout=30,
        interval=0.02,
        what="the start to begin",
    )
    _kill_hub_and_supervise(deployment)
    request["thread"].join(30)
    deployment.settle()


def test_portal_killed_during_a_job_submission_and_before_an_admission(deployment):
    """The job's record is written, the portal dies before or while the backend gets it;
    a session start meanwhile is refused in words. The hub restarts the portal (it looks
    every 30 s), which settles the submission: the job is found again or failed."""
    portal = deployment.portal
    _stop_server(deployment, "bob")
    deployment.settle()
    jobs_before = len(deployment.job_records())
    portal_process = _one(deployment, "portal")
    _in_background(
        lambda: requests.post(
            f"{portal.portal_url}api/jobs",
            json={"project": "acme-vision", "command": ["sleep", "3"]},
            headers=_headers(deployment, "bob"),
            timeout=60,
        )
    )
    wait_until(
        lambda: len(deployment.job_records()) > jobs_before,
        timeout=60,
        interval=0.01,
        what="the job's record",
    )
    _kill(portal_process.pid)
    refused = requests.post(
        f"{deployment.portal.hub_api}/users/bob/server",
        json=START,
        headers=_headers(deployment, "bob"),
        timeout=60,
    )
    # The project gate is the first to ask the portal before a start: its sentence.
    assert (refused.status_code, refused.json()["message"]) == (503, UNAVAILABLE)
    wait_until(
        lambda: requests.get(f"{portal.portal_url}api/health", timeout=5).status_code == 200,
        timeout=90,
        what="the hub to restart its portal",
    )
    deployment.settle()
    job = deployment.job_records()[-1]
    assert job["state"] in ("PENDING", "RUNNING", "COMPLETED", "FAILED"), job
    if job["backend_job_id"] is None:
        assert (job["state"], job["reason"]) == (
            "FAILED",
            "the submission was interrupted and never reached the backend",
        )
    started = _start_server(deployment, "bob")
    started["thread"].join(120)
    assert started["result"].status_code in (201, 202), started
    deployment.settle()


def test_proxy_killed_while_a_server_starts(deployment):
    """The hub notices its proxy is gone (every 5 s), starts a new one and restores every
    route: the server is reachable through the proxy again."""
    _stop_server(deployment, "alice")
    deployment.settle()
    proxy = _one(deployment, "proxy")
    _start_server(deployment, "alice")
    wait_until(
        lambda: ("alice", "") in deployment.open_records(), timeout=60, what="the usage record"
    )
    _kill(proxy.pid)
    deployment.settle()
    assert _one(deployment, "proxy").pid != proxy.pid
    status = requests.get(
        f"{deployment.portal.url}/user/alice/api/status",
        headers=_headers(deployment, "alice"),
        timeout=30,
    )
    assert status.status_code == 200, status.text
    assert "started" in status.json()
