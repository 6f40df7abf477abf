"""Admission bursts against the real portal process, on SQLite and on PostgreSQL.

Each burst fires all its requests at the same moment (threads released by one barrier) at a
portal started as its own process (``portal_process.py``), then checks the database itself:
exactly the cap admitted, the others refused with the policy's code and sentence. The last
test checks the usage ledger against a recomputation from the full history (the way usage
was computed before the ledger) after concurrent stops, the reconciler, job ends and a
portal killed and restarted.

Bounded: 50 requests per burst, each burst well under a minute even on a loaded machine.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml
from aitestbed.portal import models
from aitestbed.portal.db import make_engine, session_factory, transaction
from aitestbed.portal.jobs.local import LocalBackend
from aitestbed.portal.reconcile import close_stale
from sqlalchemy import select

from tests import harness
from tests.harness import REPO, free_port, wait_until
from tests.ledger_support import assert_ledger_matches_history

BURST = 50
BURST_SECONDS = 60  # the whole burst, answers included; measured 1-5 s on 2 loaded cores
USERS = ["alice", "bob"]
ALLOCATION = {"valid_from": "2026-01-01", "valid_until": "2030-12-31", "storage_quota_gb": 1}
PROJECTS = {
    # slug: (GPU-hour budget, concurrent GPUs)
    "cap-sessions": (1000, 4),
    "cap-jobs": (1000, 4),
    "budget-jobs": (3, 100),
    "cap-mixed": (1000, 4),
    "places": (1000, 0),
    "ledger": (1000, 8),
}
GPU_PARTITION = {"name": "gpu", "gpus_per_node": 4, "max_nodes": 2, "max_time_minutes": 600}


def _settings(state_dir: Path) -> dict:
    doc = harness.test_settings(state_dir, dict.fromkeys(USERS, "pw"))
    doc["projects"] = [
        {
            "slug": slug,
            "title": f"Burst project {slug}",
            "allocation": {**ALLOCATION, "gpu_hours": budget, "max_concurrent_gpus": cap},
            "members": [{"user": name} for name in USERS],
        }
        for slug, (budget, cap) in PROJECTS.items()
    ]
    doc["datasets"] = []
    doc["jobs"]["partitions"].append(GPU_PARTITION)
    return doc


class RunningPortal:
    """The portal process and what the tests need to reach it and its database."""

    def __init__(self, base: Path, database_url: str) -> None:
        self.base = base
        self.database_url = database_url
        self.token = secrets.token_hex(16)
        self.settings_path = base / "settings.yaml"
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.engine = make_engine(database_url)

    def start(self) -> None:
        port = free_port()
        env = {**os.environ, "AITESTBED_DATABASE_URL": self.database_url}
        log = open(self.base / f"portal-{port}.log", "w")  # noqa: SIM115 - kept by Popen
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.portal_process", *self.arguments(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}/services/portal/"

        def answers():
            assert self.process.poll() is None, self.log()
            try:
                return requests.get(self.url + "api/openapi.json", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(answers, timeout=90, what="the portal process")

    def arguments(self, port: int) -> list[str]:
        return [str(self.settings_path), str(port), self.token, *USERS]

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown step of the portal runs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def log(self) -> str:
        return "".join(p.read_text(errors="replace")[-3000:] for p in self.base.glob("*.log"))

    # -- the portal's API ----------------------------------------------------------------

    def start_session(self, user: str, project: str, flavor: str, server: str, places=None):
        body = {"user": user, "server_name": server, "project": project, "flavor": flavor}
        body |= {"image": "pytorch", "flavor_places": places}
        return requests.post(
            self.url + "api/internal/sessions",
            json=body,
            headers={"Authorization": f"token {self.token}"},
            timeout=BURST_SECONDS,
        )

    def stop_session(self, record_id: int):
        return requests.post(
            f"{self.url}api/internal/sessions/{record_id}/stop",
            headers={"Authorization": f"token {self.token}"},
            timeout=BURST_SECONDS,
        )

    def submit(self, user: str, project: str, gpus: int, command: list[str], minutes: int = 60):
        body = {"project": project, "partition": "gpu", "gpus_per_node": gpus}
        body |= {"command": command, "time_limit_minutes": minutes}
        return requests.post(
            self.url + "api/jobs",
            json=body,
            headers={"Authorization": f"token t-{user}"},
            timeout=BURST_SECONDS,
        )

    def usage(self) -> dict[str, dict]:
        response = requests.get(
            self.url + "api/usage", headers={"Authorization": "token t-alice"}, timeout=30
        )
        assert response.status_code == 200, response.text
        return {row["slug"]: row for row in response.json()}

    # -- the database itself -------------------------------------------------------------

    def held(self, slug: str) -> tuple[float, int, int]:
        """(GPUs held, open sessions, active jobs) of a project, counted row by row."""
        with session_factory(self.engine)() as session:
            project = session.scalar(select(models.Project.id).where(models.Project.slug == slug))
            sessions = session.scalars(
                select(models.SessionRecord).where(
                    models.SessionRecord.project_id == project,
                    models.SessionRecord.stopped_at.is_(None),
                )
            ).all()
            jobs = session.scalars(
                select(models.Job).where(
                    models.Job.project_id == project, models.Job.state.in_(["PENDING", "RUNNING"])
                )
            ).all()
        gpus = sum(r.gpus for r in sessions) + sum(j.nodes * j.gpus_per_node for j in jobs)
        return gpus, len(sessions), len(jobs)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def portal(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"bursts-{request.param}")
    state = base / "state"
    for name in USERS:
        (state / "homes" / name).mkdir(parents=True)
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'portal.sqlite'}"
    else:
        import psycopg

        server = request.getfixturevalue("postgres_server")
        name = f"bursts_{os.getpid()}_{free_port()}"
        admin = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        url = f"{server}/{name}"
    running = RunningPortal(base, url)
    running.settings_path.write_text(yaml.safe_dump(_settings(state)))
    running.start()
    try:
        yield running
    finally:
        running.kill()
        backend = LocalBackend(state / "jobs")
        for job_dir in (state / "jobs").glob("*"):
            backend.cancel(job_dir.name, "")
        running.engine.dispose()


def burst(calls) -> tuple[list[requests.Response], float]:
    """Run every call at the same moment; the answers in call order and the seconds taken."""
    gate = threading.Barrier(len(calls))

    def fire(call):
        gate.wait()
        return call()

    started = time.monotonic()
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(fire, calls))
    return answers, time.monotonic() - started


def by_status(answers: list[requests.Response]) -> dict[int, list[requests.Response]]:
    grouped: dict[int, list[requests.Response]] = defaultdict(list)
    for answer in answers:
        grouped[answer.status_code].append(answer)
    return grouped


def session_start(portal, i: int, project: str, flavor: str = "a100x1", places=None):
    return lambda: portal.start_session(USERS[i % 2], project, flavor, f"burst-{i}", places)


def job_submit(portal, i: int, project: str, gpus: int = 1, minutes: int = 60):
    return lambda: portal.submit(USERS[i % 2], project, gpus, ["sleep", "600"], minutes)


def cap_refusal(slug: str, cap: int) -> dict:
    message = (
        f"Project {slug!r} already uses {cap} of its {cap} GPUs; stop a session or choose a "
        "smaller flavor."
    )
    return {"detail": {"code": "gpu-cap-reached", "message": message}}


def job_cap_refusal(cap: int) -> dict:
    reason = (
        f"the project may use {cap} GPUs at a time and holds {cap}; ask for fewer GPUs or "
        "wait for a job to end."
    )
    return {"detail": f"gpus_per_node: {reason}", "field": "gpus_per_node"}


def test_gpu_session_burst_admits_exactly_the_cap(portal):
    answers, seconds = burst([session_start(portal, i, "cap-sessions") for i in range(BURST)])
    grouped = by_status(answers)
    assert sorted(grouped) == [201, 403], {s: a[0].text for s, a in grouped.items()}
    assert len(grouped[201]) == 4
    assert all(a.json() == cap_refusal("cap-sessions", 4) for a in grouped[403])
    assert portal.held("cap-sessions") == (4.0, 4, 0)
    assert seconds < BURST_SECONDS


def test_gpu_job_burst_admits_exactly_the_cap(portal):
    answers, seconds = burst([job_submit(portal, i, "cap-jobs") for i in range(BURST)])
    grouped = by_status(answers)
    assert sorted(grouped) == [201, 403], {s: a[0].text for s, a in grouped.items()}
    assert len(grouped[201]) == 4
    assert all(a.json() == job_cap_refusal(4) for a in grouped[403])
    assert portal.held("cap-jobs") == (4.0, 0, 4)
    assert seconds < BURST_SECONDS


def test_gpu_hour_budget_burst_admits_exactly_what_it_covers(portal):
    """50 jobs of 1 GPU x 60 minutes against a budget of 3 GPU-hours: 3 fit."""
    answers, seconds = burst([job_submit(portal, i, "budget-jobs") for i in range(BURST)])
    grouped = by_status(answers)
    assert sorted(grouped) == [201, 403], {s: a[0].text for s, a in grouped.items()}
    assert len(grouped[201]) == 3
    reason = (
        "time_limit_minutes: the job may use 1 GPU-hours (GPUs x time limit) but the project "
        "has 0 left; shorten the time limit or use fewer GPUs."
    )
    expected = {"detail": reason, "field": "time_limit_minutes"}
    assert all(a.json() == expected for a in grouped[403])
    assert portal.held("budget-jobs") == (3.0, 0, 3)
    assert seconds < BURST_SECONDS


def test_mixed_burst_of_sessions_and_jobs_fills_the_cap_and_never_exceeds_it(portal):
    calls = [
        session_start(portal, i, "cap-mixed") if i % 2 else job_submit(portal, i, "cap-mixed")
        for i in range(BURST)
    ]
    answers, seconds = burst(calls)
    admitted = [a for a in answers if a.status_code == 201]
    assert len(admitted) == 4, [a.text for a in answers if a.status_code != 403]
    sessions_refused = [a for i, a in enumerate(answers) if i % 2 and a.status_code != 201]
    jobs_refused = [a for i, a in enumerate(answers) if not i % 2 and a.status_code != 201]
    assert all(a.json() == cap_refusal("cap-mixed", 4) for a in sessions_refused)
    assert all(a.json() == job_cap_refusal(4) for a in jobs_refused)
    gpus, sessions, jobs = portal.held("cap-mixed")
    assert (gpus, sessions + jobs) == (4.0, 4)
    assert portal.usage()["cap-mixed"]["gpus_in_use"] == 4
    assert seconds < BURST_SECONDS


def test_flavor_places_burst_admits_exactly_the_places(portal):
    """The hub sends the flavor's places (here 3); the portal counts open sessions of the
    flavor under the admission lock, so 50 simultaneous starts open exactly 3."""
    calls = [session_start(portal, i, "places", "cpu-small", places=3) for i in range(BURST)]
    answers, seconds = burst(calls)
    grouped = by_status(answers)
    assert sorted(grouped) == [201, 409], {s: a[0].text for s, a in grouped.items()}
    assert len(grouped[201]) == 3
    message = (
        "All 3 places for the flavor 'cpu-small' are in use right now; choose another flavor "
        "or try again later."
    )
    assert all(
        a.json() == {"detail": {"code": "no-capacity", "message": message}} for a in grouped[409]
    )
    assert portal.held("places") == (0.0, 3, 0)
    assert seconds < BURST_SECONDS


# -- the ledger against the history ------------------------------------------------------


def test_ledger_equals_the_history_after_races_a_crash_and_reconciliation(portal):
    # Sessions of whole GPUs and MIG slices, and short GPU jobs the poller will end.
    starts = [
        session_start(portal, i, "ledger", ("a100x1", "a100-1g-10gb")[i % 2]) for i in range(8)
    ]
    started, _ = burst(starts)
    records = [a.json()["id"] for a in started if a.status_code == 201]
    assert len(records) == 8, [a.text for a in started]
    jobs = [portal.submit("alice", "ledger", 1, ["sleep", "1"], 5) for _ in range(3)]
    assert [j.status_code for j in jobs] == [201] * 3, [j.text for j in jobs]
    time.sleep(1.5)  # the sessions have used some GPU-hours

    # Every stop twice at the same moment, while the reconciler closes the same records.
    reconciled: list[int] = []

    def reconcile():
        with transaction(session_factory(portal.engine)) as session:
            reconciled.extend(close_stale(session, set(), datetime.now(UTC)))

    calls = [lambda r=r: portal.stop_session(r) for r in records for _ in range(2)]
    answers, _ = burst([*calls, reconcile])
    assert all(a is None or a.status_code == 200 for a in answers)
    assert portal.held("ledger")[1] == 0
    assert_ledger_matches_history(portal.engine)

    # The jobs end through the poller; then a crash and a restart change nothing.
    def jobs_ended():
        return portal.held("ledger")[2] == 0

    wait_until(jobs_ended, timeout=60, what="the ledger project's jobs to end")
    assert_ledger_matches_history(portal.engine)
    before = portal.usage()["ledger"]
    assert before["running_sessions"] == 0 and before["gpus_in_use"] == 0
    portal.kill()
    portal.start()
    assert portal.usage()["ledger"] == before
    assert_ledger_matches_history(portal.engine)
    # After everything above, the reconciler closes whatever is still open (the bursts'
    # sessions of other projects): the ledger still equals the history.
    reconcile()
    assert_ledger_matches_history(portal.engine)
    assert {
        row["slug"]: row["running_sessions"] for row in portal.usage().values()
    } == dict.fromkeys(PROJECTS, 0)
