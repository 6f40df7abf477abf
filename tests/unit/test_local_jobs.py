"""The job API with the local backend (the embedded default): real processes, real files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import nbformat
import pytest
from aitestbed.portal.jobs.local import LocalBackend
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.jobs_support import (
    JobsClient,
    make_app,
    python_notebook,
    wait_for_state,
    write_settings,
)

FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


class SlowStartBackend(LocalBackend):
    """The real runner, started only after a pause: the window before its first status,
    which a test cannot otherwise hit on purpose."""

    start_delay = "60"

    def runner_command(self, job_dir: Path) -> list[str]:
        return [
            "/bin/sh",
            "-c",
            f'sleep {self.start_delay}; exec "$@"',
            "runner",
            *super().runner_command(job_dir),
        ]


class PausedRunnerBackend(SlowStartBackend):
    start_delay = "1.5"


@pytest.fixture
def local(tmp_path, settings_doc, monkeypatch, database_url, request):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    settings_doc["jobs"]["partitions"].append(
        {"name": "gpu", "gpus_per_node": 4, "max_nodes": 2, "max_time_minutes": 600}
    )
    path = write_settings(tmp_path / "settings.yaml", settings_doc)
    for name in ("alice", "bob"):
        (tmp_path / "state" / "homes" / name).mkdir(parents=True)
    (tmp_path / "state" / "projects" / "acme-vision").mkdir(parents=True)
    # One "minute" of time limit lasts 0.5 s here, so TIMEOUT is quick to see.
    backend_class = getattr(request, "param", LocalBackend)
    backend = backend_class(tmp_path / "state" / "jobs", seconds_per_minute=0.5)
    app, gateway, engine = make_app(path, backend, ["alice", "bob", "carol"])
    with TestClient(app) as client:
        yield {
            "backend": backend,
            "alice": JobsClient(client, "t-alice"),
            "bob": JobsClient(client, "t-bob"),
            "carol": JobsClient(client, "t-carol"),
            "gateway": gateway,
            "home": tmp_path / "state" / "homes",
            "engine": engine,
            "path": path,
        }
    for job_dir in (tmp_path / "state" / "jobs").glob("*"):
        backend.cancel(job_dir.name, "")
        kill_group(runner_pid(job_dir))
    engine.dispose()


def runner_pid(job_dir: Path) -> int:
    return int((job_dir / "runner.pid").read_text())


def kill_group(pgid: int) -> None:
    """SIGKILL a runner with everything in its session (it leads a session of its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def job_count(engine) -> int:
    from aitestbed.portal import models

    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(models.Job)).scalar_one()


def test_command_job_runs_and_its_output_is_readable(local):
    alice = local["alice"]
    response = alice.submit(
        name="hello", project="acme-vision", command=["python", "-c", "print('hi', 6*7)"]
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["state"] == "PENDING" and job["owner"] == "alice"
    assert job["working_dir"] == str(local["home"] / "alice")
    done = wait_for_state(local["gateway"], alice, job["id"], FINAL)
    assert (done["state"], done["exit_code"]) == ("COMPLETED", 0)
    assert done["started_at"] and done["ended_at"] and done["gpu_hours_charged"] == 0.0
    assert "hi 42" in alice.logs(job["id"]).json()["text"]


def test_failure_timeout_and_cancel_are_reported_with_exit_codes(local):
    alice, gateway = local["alice"], local["gateway"]
    failing = alice.submit(project="acme-vision", command=["bash", "-c", "exit 3"]).json()
    slow = alice.submit(project="acme-vision", command=["sleep", "30"], time_limit_minutes=1).json()
    cancelled = alice.submit(
        project="acme-vision", command=["sleep", "30"], time_limit_minutes=100
    ).json()
    wait_for_state(gateway, alice, cancelled["id"], ("RUNNING",))
    assert alice.cancel(cancelled["id"]).status_code == 200
    failed = wait_for_state(gateway, alice, failing["id"], FINAL)
    assert (failed["state"], failed["exit_code"]) == ("FAILED", 3)
    timed_out = wait_for_state(gateway, alice, slow["id"], FINAL)
    assert timed_out["state"] == "TIMEOUT"
    stopped = wait_for_state(gateway, alice, cancelled["id"], FINAL)
    assert stopped["state"] == "CANCELLED"


def test_users_cannot_see_or_cancel_each_others_jobs(local):
    alice, bob = local["alice"], local["bob"]
    job = alice.submit(project="acme-vision", command=["sleep", "20"]).json()
    assert [j["id"] for j in alice.list().json()] == [job["id"]]
    assert bob.list().json() == []
    for response in (bob.get(job["id"]), bob.cancel(job["id"]), bob.logs(job["id"])):
        assert response.status_code == 404
        assert response.json()["detail"] == f"No job {job['id']} that you can see."
    assert alice.get(job["id"]).json()["state"] in ("PENDING", "RUNNING")
    alice.cancel(job["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x;rm -rf ~", "command": ["true"]}, "name"),
        ({"command": ["true"], "working_dir": "/etc"}, "working_dir"),
        ({"command": ["true"], "working_dir": "../bob"}, "working_dir"),
        ({"command": ["true"], "nodes": -1}, "nodes"),
        ({"command": ["true"], "partition": "gpu", "gpus_per_node": 100000}, "gpus_per_node"),
        ({"command": ["true"], "partition": "nope"}, "partition"),
        ({"command": ["true"], "project": "uni-nlp"}, "project"),
        ({"command": ["true"], "partition": "gpu", "gpus_per_node": 4}, "gpus_per_node"),
    ],
)
def test_refusals_are_4xx_naming_the_field_and_create_no_job(local, body, field):
    body = {"project": "acme-vision", **body}
    if field == "gpus_per_node" and body.get("gpus_per_node") == 4:
        body["project"] = "acme-vision"
        body["nodes"] = 2  # 8 GPUs > the project's 4 concurrent GPUs
    response = local["alice"].submit(**body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["field"] == field
    assert response.json()["detail"].startswith(f"{field}: ")
    assert job_count(local["engine"]) == 0


def test_same_idempotency_key_makes_one_job(local):
    alice = local["alice"]
    first = alice.submit(key="k-1", project="acme-vision", command=["true"])
    again = alice.submit(key="k-1", project="acme-vision", command=["true"])
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other_user = local["bob"].submit(key="k-1", project="acme-vision", command=["true"])
    assert other_user.status_code == 201 and other_user.json()["id"] != first.json()["id"]
    assert job_count(local["engine"]) == 2


def test_gpu_jobs_are_admitted_against_the_cap_and_charged_for_elapsed_time(local):
    alice, gateway = local["alice"], local["gateway"]
    job = alice.submit(
        project="acme-vision", partition="gpu", gpus_per_node=4, command=["sleep", "1"]
    ).json()
    second = alice.submit(project="acme-vision", partition="gpu", gpus_per_node=1, command=["true"])
    assert second.status_code == 403 and second.json()["field"] == "gpus_per_node"
    done = wait_for_state(gateway, alice, job["id"], FINAL)
    assert done["state"] == "COMPLETED"
    # 4 GPUs for about one second
    assert 4 * 0.9 / 3600 < done["gpu_hours_charged"] < 4 * 10 / 3600
    assert (
        alice.submit(
            project="acme-vision", partition="gpu", gpus_per_node=1, command=["true"]
        ).status_code
        == 201
    )


def test_reads_never_call_the_backend_and_one_poll_covers_every_job(local):
    alice, bob, gateway = local["alice"], local["bob"], local["gateway"]
    ids = [alice.submit(project="acme-vision", command=["sleep", "5"]).json()["id"]]
    ids.append(bob.submit(project="acme-vision", command=["sleep", "5"]).json()["id"])
    calls = gateway.backend_calls
    for _ in range(25):
        alice.get(ids[0])
        bob.list()
    assert gateway.backend_calls == calls
    gateway.poll_once()
    assert gateway.backend_calls == calls + 1
    for job_id, api in zip(ids, (alice, bob), strict=True):
        api.cancel(job_id)


def test_a_restarted_portal_finds_its_running_job_and_records_the_end(local, tmp_path):
    alice = local["alice"]
    job = alice.submit(
        project="acme-vision", partition="gpu", gpus_per_node=2, command=["sleep", "2"]
    ).json()
    wait_for_state(local["gateway"], alice, job["id"], ("RUNNING",))
    # A new portal process: new app, new gateway, new backend object on the same folders.
    backend = LocalBackend(tmp_path / "state" / "jobs", seconds_per_minute=0.5)
    app, gateway, engine = make_app(local["path"], backend, ["alice"])
    with TestClient(app) as client:
        restarted = JobsClient(client, "t-alice")
        done = wait_for_state(gateway, restarted, job["id"], FINAL)
    engine.dispose()
    assert done["state"] == "COMPLETED"
    assert done["gpu_hours_charged"] > 2 * 1.5 / 3600


def test_notebook_job_writes_its_output_notebook_beside_it(local):
    alice, home = local["alice"], local["home"] / "alice"
    notebook = python_notebook(
        "result = 21 * factor\nprint('result', result)", parameters="factor = 1"
    )
    nbformat.write(notebook, home / "analysis.ipynb")
    job = alice.submit(
        project="acme-vision",
        kind="notebook",
        notebook="analysis.ipynb",
        parameters={"factor": 2},
        time_limit_minutes=200,
    ).json()
    assert job["notebook_output"] == str(home / "analysis.output.ipynb")
    done = wait_for_state(local["gateway"], alice, job["id"], FINAL, timeout=120)
    assert done["state"] == "COMPLETED", alice.logs(job["id"]).json()["text"]
    output = json.loads((home / "analysis.output.ipynb").read_text())
    printed = "".join(
        "".join(o.get("text", "")) for c in output["cells"] for o in c.get("outputs", [])
    )
    assert "result 42" in printed


def test_job_api_is_documented_and_needs_a_token(local):
    client = local["alice"].client
    assert client.get("/services/portal/api/jobs").status_code == 401
    spec = client.get("/services/portal/api/openapi.json").json()
    assert "/services/portal/api/jobs/{job_id}/logs" in spec["paths"]


def test_interrupted_submissions_are_adopted_or_failed_never_left_pending(local):
    """The portal stopped between recording a job and hearing back from the backend."""
    from datetime import UTC, datetime, timedelta

    from aitestbed.portal import models
    from aitestbed.portal.db import session_factory, transaction

    alice, gateway = local["alice"], local["gateway"]
    reached = alice.submit(project="acme-vision", command=["true"]).json()
    lost = alice.submit(project="acme-vision", command=["true"]).json()
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    with transaction(session_factory(local["engine"])) as session:
        for job_id, uid in ((reached["id"], None), (lost["id"], "0000lost0000")):
            row = session.get(models.Job, job_id)
            row.backend_job_id, row.reason, row.submitted_at = None, "submitting", long_ago
            if uid:
                row.uid = uid  # no job folder has this id: the backend never saw it
    adopted = wait_for_state(gateway, alice, reached["id"], FINAL)
    assert adopted["state"] == "COMPLETED" and adopted["backend_job_id"] == reached["uid"]
    failed = alice.get(lost["id"]).json()
    assert failed["state"] == "FAILED" and "interrupted" in failed["reason"]
    assert failed["gpu_hours_charged"] == 0.0


def test_jobs_and_sessions_share_the_gpu_cap_and_the_usage(local):
    """A running GPU session holds GPUs a job cannot also take; a finished job's charge
    shows in the project's usage that sessions are admitted against."""
    from datetime import UTC, datetime

    from aitestbed.portal import models
    from aitestbed.portal.db import session_factory, transaction
    from sqlalchemy import select

    alice, gateway = local["alice"], local["gateway"]
    with transaction(session_factory(local["engine"])) as session:
        project = session.scalar(select(models.Project).where(models.Project.slug == "acme-vision"))
        user = session.scalar(select(models.User).where(models.User.name == "alice"))
        session.add(
            models.SessionRecord(
                user_id=user.id,
                project_id=project.id,
                flavor="a100x1",
                image="pytorch",
                gpus=3.0,
                started_at=datetime.now(UTC),
            )
        )
    too_many = alice.submit(
        project="acme-vision", partition="gpu", gpus_per_node=2, command=["true"]
    )
    assert too_many.status_code == 403 and "holds 3" in too_many.json()["detail"]
    job = alice.submit(
        project="acme-vision", partition="gpu", gpus_per_node=1, command=["sleep", "1"]
    ).json()
    done = wait_for_state(gateway, alice, job["id"], FINAL)
    usage = alice.client.get("/services/portal/api/usage", headers=alice.headers).json()
    acme = next(u for u in usage if u["slug"] == "acme-vision")
    assert acme["gpu_hours_used"] >= round(done["gpu_hours_charged"], 4) > 0


def test_a_key_is_bound_to_its_request_and_another_body_is_refused(local):
    alice = local["alice"]
    first = alice.submit(key="k-bound", project="acme-vision", command=["true"])
    # the same request written differently (a default spelled out, keys in another order)
    same = alice.submit(key="k-bound", nodes=1, command=["true"], project="acme-vision")
    other = alice.submit(key="k-bound", project="acme-vision", command=["false"])
    assert (first.status_code, same.status_code) == (201, 200)
    assert same.json()["id"] == first.json()["id"]
    assert other.status_code == 422
    assert other.json() == {
        "field": "idempotency_key",
        "detail": f"idempotency_key: The Idempotency-Key 'k-bound' was already used for job "
        f"{first.json()['id']} with a different request; use a new key for a new job.",
    }
    # the key in the body is bound the same way as the header
    body_key = local["alice"].client.post(
        "/services/portal/api/jobs",
        json={"project": "acme-vision", "command": ["false"], "idempotency_key": "k-bound"},
        headers=alice.headers,
    )
    assert body_key.status_code == 422 and body_key.json()["field"] == "idempotency_key"
    assert job_count(local["engine"]) == 1


def test_a_burst_with_one_key_makes_one_job_and_refuses_every_other_body(local):
    """20 simultaneous submissions with one key: 10 with the same body, 10 with another."""
    from concurrent.futures import ThreadPoolExecutor

    alice = local["alice"]
    bodies = [["true"]] * 10 + [["echo", "other"]] * 10

    def send(command):
        return alice.submit(key="k-burst", project="acme-vision", command=command)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, bodies))
    created = [a for a in answers if a.status_code == 201]
    assert len(created) == 1, [a.status_code for a in answers]
    winner = created[0].json()["id"]
    by_body = {
        tuple(command): sorted(
            (a.status_code, a.json().get("id", a.json().get("field")))
            for c, a in zip(bodies, answers, strict=True)
            if c == command
        )
        for command in bodies
    }
    won, lost = sorted(by_body.values(), key=lambda group: group[0][0] != 200)
    assert won == [(200, winner)] * 9 + [(201, winner)]
    assert lost == [(422, "idempotency_key")] * 10
    assert job_count(local["engine"]) == 1


class LostAnswerBackend(LocalBackend):
    """A local backend whose answer to a submission gets lost: after starting the job
    (``reached``) or before (not reached), it raises SubmissionUncertain."""

    reached = True
    failing = True

    def submit(self, submission):
        from aitestbed.portal.jobs.backend import SubmissionUncertain

        if not self.failing:
            return super().submit(submission)
        if self.reached:
            super().submit(submission)
        raise SubmissionUncertain("The batch system did not confirm the submission.")


@pytest.fixture
def lossy(tmp_path, settings_doc, monkeypatch, database_url):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    settings_doc["jobs"]["user_mapping"] = {"overrides": {"bob": "root"}}
    path = write_settings(tmp_path / "settings.yaml", settings_doc)
    for name in ("alice", "bob"):
        (tmp_path / "state" / "homes" / name).mkdir(parents=True)
    (tmp_path / "state" / "homes" / "root").mkdir(parents=True)
    backend = LostAnswerBackend(tmp_path / "state" / "jobs", seconds_per_minute=0.5)
    app, gateway, engine = make_app(path, backend, ["alice", "bob"])
    with TestClient(app) as client:
        yield {
            "alice": JobsClient(client, "t-alice"),
            "bob": JobsClient(client, "t-bob"),
            "gateway": gateway,
            "backend": backend,
            "engine": engine,
        }
    for job_dir in (tmp_path / "state" / "jobs").glob("*"):
        backend.cancel(job_dir.name, "")
    engine.dispose()


def test_a_lost_answer_keeps_the_job_and_a_retry_finds_it_in_the_backend(lossy):
    alice, gateway = lossy["alice"], lossy["gateway"]
    lost = alice.submit(key="k-lost", project="acme-vision", command=["true"])
    assert lost.status_code == 503 and lost.headers["Retry-After"]
    [job] = alice.list().json()
    assert lost.json()["detail"] == (
        f"The batch system did not confirm the submission. Its job id is {job['id']}."
    )
    assert (job["state"], job["backend_job_id"]) == ("PENDING", None)
    assert job["reason"].startswith("submission uncertain")
    lossy["backend"].failing = False
    again = alice.submit(key="k-lost", project="acme-vision", command=["true"])
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["backend_job_id"]) == (job["id"], job["uid"])
    assert wait_for_state(gateway, alice, job["id"], FINAL)["state"] == "COMPLETED"
    assert job_count(lossy["engine"]) == 1


def test_a_lost_submission_that_never_arrived_fails_after_the_grace_time(lossy):
    from datetime import UTC, datetime, timedelta

    from aitestbed.portal import models
    from aitestbed.portal.db import session_factory, transaction

    alice, gateway, backend = lossy["alice"], lossy["gateway"], lossy["backend"]
    backend.reached = False
    assert alice.submit(key="k-never", project="acme-vision", command=["true"]).status_code == 503
    [job] = alice.list().json()
    gateway.poll_once()  # not in the backend, but its answer may still be on the way
    kept = alice.get(job["id"]).json()
    assert (kept["state"], kept["reason"]) == (job["state"], job["reason"])
    with transaction(session_factory(lossy["engine"])) as session:
        session.get(models.Job, job["id"]).submitted_at = datetime.now(UTC) - timedelta(minutes=3)
    gateway.poll_once()
    failed = alice.get(job["id"]).json()
    assert failed["state"] == "FAILED" and failed["gpu_hours_charged"] == 0.0
    assert failed["reason"] == (
        "the submission was interrupted and never reached the batch system; submit it again "
        "(with a new idempotency key)"
    )
    # the key stays bound to that job; nothing was submitted twice
    backend.failing = False
    again = alice.submit(key="k-never", project="acme-vision", command=["true"])
    assert (again.status_code, again.json()["state"]) == (200, "FAILED")
    assert not list(backend.jobs_dir.glob("*"))


def test_a_system_cluster_account_is_refused_before_the_backend(lossy):
    bob, backend = lossy["bob"], lossy["backend"]
    backend.failing = False
    refused = bob.submit(key="k-root", project="acme-vision", command=["id"])
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "The cluster account 'root' is a system account that portal jobs may not "
        "use; ask the operators to map you to a personal account."
    }
    assert job_count(lossy["engine"]) == 0
    assert not backend.jobs_dir.exists() or not list(backend.jobs_dir.glob("*"))


def submit_at_the_cap(alice, **body):
    """A job holding all 4 GPUs of acme-vision; a second GPU job is refused while it is
    active."""
    job = alice.submit(project="acme-vision", partition="gpu", gpus_per_node=4, **body)
    assert job.status_code == 201, job.text
    refused = alice.submit(
        project="acme-vision", partition="gpu", gpus_per_node=1, command=["true"]
    )
    assert (refused.status_code, refused.json()["field"]) == (403, "gpus_per_node")
    return job.json()


def assert_gpus_free(alice):
    again = alice.submit(project="acme-vision", partition="gpu", gpus_per_node=4, command=["true"])
    assert again.status_code == 201, again.text


@pytest.mark.parametrize("local", [PausedRunnerBackend], indirect=True)
def test_a_job_whose_working_folder_is_removed_fails_with_the_reason_and_frees_its_gpus(local):
    alice, gateway = local["alice"], local["gateway"]
    folder = local["home"] / "alice" / "run-1"
    folder.mkdir()
    job = submit_at_the_cap(alice, working_dir=str(folder), command=["true"])
    folder.rmdir()  # before the runner starts the job (it waits 1.5 s here)
    failed = wait_for_state(gateway, alice, job["id"], FINAL)
    assert (failed["state"], failed["exit_code"], failed["gpu_hours_charged"]) == (
        "FAILED",
        None,
        0.0,
    )
    assert failed["reason"] == (
        f"the working folder {folder} no longer exists; create it and submit the job again."
    )
    assert_gpus_free(alice)


@pytest.mark.parametrize("local", [SlowStartBackend], indirect=True)
def test_a_runner_killed_before_its_first_status_fails_the_job_and_frees_its_gpus(local):
    alice, gateway = local["alice"], local["gateway"]
    job = submit_at_the_cap(alice, command=["true"])
    job_dir = local["backend"].jobs_dir / job["backend_job_id"]
    assert not (job_dir / "status.json").exists()
    kill_group(runner_pid(job_dir))
    failed = wait_for_state(gateway, alice, job["id"], FINAL)
    assert (failed["state"], failed["gpu_hours_charged"]) == ("FAILED", 0.0)
    assert failed["reason"] == (
        "the job's supervisor process stopped before the job started (no error was "
        "recorded); submit it again."
    )
    assert_gpus_free(alice)


@pytest.mark.parametrize("local", [SlowStartBackend], indirect=True)
def test_cancel_of_a_job_whose_runner_is_gone_ends_it_and_answers_cancelled(local):
    alice, gateway = local["alice"], local["gateway"]
    job = submit_at_the_cap(alice, command=["true"])
    kill_group(runner_pid(local["backend"].jobs_dir / job["backend_job_id"]))
    answer = alice.cancel(job["id"])  # before any poll noticed the runner is gone
    assert answer.status_code == 200
    body = answer.json()
    assert (body["state"], body["reason"], body["gpu_hours_charged"]) == ("CANCELLED", "", 0.0)
    assert alice.get(job["id"]).json()["state"] == "CANCELLED"
    gateway.poll_once()
    assert alice.get(job["id"]).json()["state"] == "CANCELLED"
    assert_gpus_free(alice)


def test_a_runner_killed_while_its_job_runs_fails_the_job_and_stops_its_processes(local):
    alice, gateway = local["alice"], local["gateway"]
    job = submit_at_the_cap(alice, command=["sleep", "60"], time_limit_minutes=600)
    running = wait_for_state(gateway, alice, job["id"], ("RUNNING",))
    job_dir = local["backend"].jobs_dir / running["backend_job_id"]
    job_group = json.loads((job_dir / "status.json").read_text())["job_pid"]
    assert group_alive(job_group)
    os.kill(runner_pid(job_dir), signal.SIGKILL)  # the runner only: its job runs on
    failed = wait_for_state(gateway, alice, job["id"], FINAL)
    assert (failed["state"], failed["exit_code"]) == ("FAILED", None)
    assert failed["reason"] == (
        "the job's supervisor process stopped unexpectedly (killed, or the machine "
        "restarted), so the job was stopped; submit it again."
    )
    deadline = time.monotonic() + 10
    while group_alive(job_group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(job_group), "the job's processes outlived its runner"
    assert_gpus_free(alice)


def test_a_cancel_of_a_running_job_is_answered_with_its_state_and_ends_it(local):
    alice, gateway = local["alice"], local["gateway"]
    job = alice.submit(project="acme-vision", command=["sleep", "60"]).json()
    wait_for_state(gateway, alice, job["id"], ("RUNNING",))
    body = alice.cancel(job["id"]).json()
    assert (body["state"], body["reason"]) in (("RUNNING", "cancel requested"), ("CANCELLED", ""))
    assert wait_for_state(gateway, alice, job["id"], FINAL)["state"] == "CANCELLED"


def test_a_restarted_portal_settles_submissions_its_predecessor_left_at_once(local, tmp_path):
    """No grace period for a submission recorded before the portal process started: nobody
    can still be submitting it."""
    from aitestbed.portal import models
    from aitestbed.portal.db import session_factory, transaction
    from aitestbed.portal.jobs.gateway import NEVER_ARRIVED_REASON

    alice = local["alice"]
    lost = alice.submit(project="acme-vision", command=["true"]).json()
    with transaction(session_factory(local["engine"])) as session:
        row = session.get(models.Job, lost["id"])
        row.backend_job_id, row.reason, row.uid = None, "submitting", "0000lost0001"
    local["gateway"].poll_once()  # the same process: still within the grace period
    assert alice.get(lost["id"]).json()["state"] == "PENDING"
    backend = LocalBackend(tmp_path / "state" / "jobs", seconds_per_minute=0.5)
    _app, restarted, engine = make_app(local["path"], backend, ["alice"])
    restarted.poll_once()
    engine.dispose()
    failed = alice.get(lost["id"]).json()
    assert (failed["state"], failed["reason"], failed["gpu_hours_charged"]) == (
        "FAILED",
        NEVER_ARRIVED_REASON,
        0.0,
    )
