"""The job gateway against a real single-node Slurm (slurmctld, slurmd, slurmrestd with JWT).

The portal app runs in-process (FastAPI TestClient with a table of identities); everything
behind it is real: slurmrestd, the JWTs the portal mints, jobs running as the users' own
Unix accounts, fake GPUs scheduled through gres, the job-completion file.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from aitestbed.portal.jobs.backend import BackendRejected
from aitestbed.portal.jobs.slurm import SlurmBackend
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient

from tests.jobs_support import JobsClient, make_app, python_notebook, wait_for_state
from tests.slurm.conftest import UNIX_USERS
from tests.slurm.portal_support import count_jobs, portal_settings, squeue_ids

pytestmark = pytest.mark.slurm

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
NAMES = ["alice", "bob", "carol"]


@pytest.fixture(scope="module")
def settings_path(slurm_cluster, cluster_users, tmp_path_factory):
    # carol needs a project to get as far as the cluster-account check
    return portal_settings(
        slurm_cluster,
        cluster_users,
        tmp_path_factory.mktemp("slurm-portal"),
        overrides={"carol": "aitb-nosuchuser"},
        members=("carol",),
    )


@pytest.fixture(scope="module")
def portal(settings_path):
    backend = SlurmBackend(load_settings(settings_path).jobs.slurm)
    app, gateway, engine = make_app(settings_path, backend, NAMES)
    with TestClient(app) as client:
        yield {
            "client": client,
            "gateway": gateway,
            "engine": engine,
            "backend": backend,
            **{name: JobsClient(client, f"t-{name}") for name in NAMES},
        }
    engine.dispose()


def logs_text(api, job_id) -> str:
    return api.logs(job_id).json()["text"]


def test_two_users_jobs_run_as_their_own_unix_users_and_stay_private(portal, slurm_cluster):
    alice, bob, gateway = portal["alice"], portal["bob"], portal["gateway"]
    first = alice.submit(name="whoami", project="acme-vision", command=["id", "-un"])
    second = bob.submit(name="whoami", project="acme-vision", command=["id", "-un"])
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    a, b = first.json(), second.json()
    assert a["backend"] == "slurm" and a["backend_job_id"]
    for api, job, unix in ((alice, a, UNIX_USERS["alice"]), (bob, b, UNIX_USERS["bob"])):
        done = wait_for_state(gateway, api, job["id"], FINAL)
        assert (done["state"], done["exit_code"]) == ("COMPLETED", 0)
        assert logs_text(api, job["id"]).strip() == unix
    assert [j["id"] for j in alice.list().json()] == [a["id"]]
    assert [j["id"] for j in bob.list().json()] == [b["id"]]
    for response in (bob.get(a["id"]), bob.logs(a["id"]), bob.cancel(a["id"])):
        assert response.status_code == 404


def test_cancel_works_and_slurm_itself_refuses_another_users_cancel(portal, slurm_cluster):
    alice, gateway, backend = portal["alice"], portal["gateway"], portal["backend"]
    job = alice.submit(name="long", project="acme-vision", command=["sleep", "300"]).json()
    wait_for_state(gateway, alice, job["id"], ("RUNNING",))
    shown = subprocess.run(
        ["scontrol", "show", "job", job["backend_job_id"]],
        env=slurm_cluster.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "Account=acme-vision" in shown and f"UserId={UNIX_USERS['alice']}(" in shown
    # an interrupted submission is found again by the portal id in the job's comment
    assert backend.find([job["uid"], "0000missing"]) == {job["uid"]: job["backend_job_id"]}
    # Even if the portal were tricked, Slurm checks the JWT's user: bob's token cannot cancel.
    with pytest.raises(BackendRejected, match="not yours"):
        backend.cancel(job["backend_job_id"], UNIX_USERS["bob"])
    assert portal["bob"].cancel(job["id"]).status_code == 404
    assert alice.cancel(job["id"]).status_code == 200
    done = wait_for_state(gateway, alice, job["id"], FINAL)
    assert done["state"] == "CANCELLED"


def test_gpu_job_gets_cuda_visible_devices_and_is_charged(portal):
    alice, gateway = portal["alice"], portal["gateway"]
    job = alice.submit(
        name="gpu",
        project="acme-vision",
        gpus_per_node=2,
        command=["bash", "-c", 'echo "CVD=$CUDA_VISIBLE_DEVICES"; sleep 2'],
    ).json()
    done = wait_for_state(gateway, alice, job["id"], FINAL)
    assert done["state"] == "COMPLETED"
    assert "CVD=0,1" in logs_text(alice, job["id"])
    assert done["gpu_hours_charged"] >= 2 * 1 / 3600


def test_failed_job_reports_its_exit_code(portal):
    alice, gateway = portal["alice"], portal["gateway"]
    job = alice.submit(name="fails", project="acme-vision", command=["bash", "-c", "exit 3"])
    done = wait_for_state(gateway, alice, job.json()["id"], FINAL)
    assert (done["state"], done["exit_code"]) == ("FAILED", 3)


def test_notebook_job_produces_its_output_notebook(portal, cluster_users):
    alice, gateway = portal["alice"], portal["gateway"]
    account = cluster_users["accounts"]["alice"]
    home = cluster_users["homes"] / UNIX_USERS["alice"]
    notebook = python_notebook(
        "import getpass\nprint('user', getpass.getuser(), epochs)", parameters="epochs = 1"
    )
    source = home / "train.ipynb"
    nbformat.write(notebook, source)
    os.chown(source, account.pw_uid, account.pw_gid)
    job = alice.submit(
        name="nb",
        project="acme-vision",
        kind="notebook",
        notebook="train.ipynb",
        parameters={"epochs": 5},
        time_limit_minutes=10,
    ).json()
    done = wait_for_state(gateway, alice, job["id"], FINAL, timeout=180)
    assert done["state"] == "COMPLETED", logs_text(alice, job["id"])
    output = home / "train.output.ipynb"
    assert done["notebook_output"] == str(output)
    assert output.stat().st_uid == account.pw_uid
    cells = json.loads(output.read_text())["cells"]
    printed = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    assert f"user {UNIX_USERS['alice']} 5" in printed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x;touch /tmp/aitb-pwned", "command": ["true"]}, "name"),
        ({"name": "$(id)", "command": ["true"]}, "name"),
        ({"command": ["sh -c id"]}, "command"),
        ({"command": ["echo", "a\nb"]}, "args[1]"),
        ({"command": ["true"], "working_dir": "/etc"}, "working_dir"),
        ({"command": ["true"], "working_dir": "/tmp"}, "working_dir"),
        ({"command": ["true"], "working_dir": "../aitb-bob"}, "working_dir"),
        ({"command": ["true"], "nodes": -1}, "nodes"),
        ({"command": ["true"], "gpus_per_node": 1000000}, "gpus_per_node"),
        ({"command": ["true"], "memory_mb": 10**12}, "memory_mb"),
        ({"command": ["true"], "time_limit_minutes": -5}, "time_limit_minutes"),
        ({"command": ["true"], "partition": "debug"}, "partition"),
        ({"command": ["true"], "partition": "gpu;ls"}, "partition"),
        ({"command": ["true"], "environment": {"X;Y": "1"}}, "environment.X;Y"),
        ({"command": ["true"], "project": "uni-nlp"}, "project"),
    ],
)
def test_hostile_input_is_refused_and_creates_no_job(portal, slurm_cluster, body, field):
    before = count_jobs(portal["engine"])
    response = portal["alice"].submit(**{"project": "acme-vision", **body})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["field"] == field
    assert count_jobs(portal["engine"]) == before
    assert squeue_ids(slurm_cluster, UNIX_USERS["alice"]) == []


def test_metacharacters_in_arguments_reach_the_program_as_plain_text(portal, cluster_users):
    alice, gateway = portal["alice"], portal["gateway"]
    hostile = ["; touch /tmp/aitb-pwned", "$(touch /tmp/aitb-pwned2)", "`id`", "a'b\"c"]
    job = alice.submit(name="args", project="acme-vision", command=["printf", "%s\\n", *hostile])
    done = wait_for_state(gateway, alice, job.json()["id"], FINAL)
    assert done["state"] == "COMPLETED"
    assert logs_text(alice, done["id"]).splitlines() == hostile
    assert not Path("/tmp/aitb-pwned").exists() and not Path("/tmp/aitb-pwned2").exists()


def test_user_without_cluster_account_is_refused_before_submitting(portal, slurm_cluster):
    response = portal["carol"].submit(project="acme-vision", command=["true"])
    assert response.status_code == 403
    assert "aitb-nosuchuser" in response.json()["detail"]
    assert "does not exist" in response.json()["detail"]


def test_slurmrestd_down_is_a_clear_503_and_a_retry_makes_exactly_one_job(portal, slurm_cluster):
    alice = portal["alice"]
    before = count_jobs(portal["engine"])
    slurm_cluster.stop_rest()
    try:
        down = alice.submit(
            key="retry-1", name="retried", project="acme-vision", command=["sleep", "30"]
        )
        assert down.status_code == 503
        assert "slurmrestd" in down.json()["detail"] and "Try again" in down.json()["detail"]
        assert down.headers["Retry-After"]
        assert count_jobs(portal["engine"]) == before
    finally:
        slurm_cluster.start_rest()
    first = alice.submit(
        key="retry-1", name="retried", project="acme-vision", command=["sleep", "30"]
    )
    again = alice.submit(
        key="retry-1", name="retried", project="acme-vision", command=["sleep", "30"]
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert count_jobs(portal["engine"]) == before + 1
    assert squeue_ids(slurm_cluster, UNIX_USERS["alice"], "retried") == [
        first.json()["backend_job_id"]
    ]
    alice.cancel(first.json()["id"])


def test_timeout_is_reported(portal):
    alice, gateway = portal["alice"], portal["gateway"]
    job = alice.submit(
        name="slow", project="acme-vision", command=["sleep", "600"], time_limit_minutes=1
    ).json()
    done = wait_for_state(gateway, alice, job["id"], FINAL, timeout=200)
    assert done["state"] == "TIMEOUT"
    assert done["ended_at"] and done["started_at"]


def test_restarted_portal_records_a_job_that_ended_and_left_slurmctld(
    portal, settings_path, slurm_cluster
):
    """The portal is down while the job ends and Slurm forgets it (MinJobAge): the new
    portal finds it in the job-completion file, records the end and charges it."""
    alice, gateway = portal["alice"], portal["gateway"]
    job = alice.submit(
        name="across-restart",
        project="acme-vision",
        gpus_per_node=1,
        command=["sleep", "3"],
    ).json()
    wait_for_state(gateway, alice, job["id"], ("RUNNING",))
    # the first portal stops polling here; wait until slurmctld has purged the job
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        shown = subprocess.run(
            ["scontrol", "show", "job", job["backend_job_id"]],
            env=slurm_cluster.env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        if shown.returncode != 0:
            break
        time.sleep(2)
    else:
        pytest.fail("slurmctld kept the finished job longer than expected")
    backend = SlurmBackend(load_settings(settings_path).jobs.slurm)
    app, _restarted, engine = make_app(settings_path, backend, NAMES, poll_interval=0.3)
    with TestClient(app) as client:
        api = JobsClient(client, "t-alice")
        deadline = time.monotonic() + 30
        while api.get(job["id"]).json()["state"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.3)  # the restarted portal's own background poller does the work
        done = api.get(job["id"]).json()
    engine.dispose()
    assert (done["state"], done["exit_code"]) == ("COMPLETED", 0)
    assert 1 * 2.5 / 3600 < done["gpu_hours_charged"] < 1 * 60 / 3600
