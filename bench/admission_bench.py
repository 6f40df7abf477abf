"""Admission under contention, and admission against the size of the history.

The portal runs as its own process (``tests/faults/portal_process.py``: the production
start-up and app, uvicorn, the local job backend; tokens resolve from a fixed table instead
of the hub), on SQLite and on PostgreSQL. One project (``bench``) has a cap of 8 GPUs and a
large GPU-hour budget; its history is N closed session records and N ended jobs (seeded,
``random.Random(14)``, bulk-inserted, charged to the ledger as the portal would have).

Per database and history size it measures:

- **decide**: one job admission in the benchmark's own process, without HTTP (take the
  lock, read the usage, decide, roll back): the database part alone.
- **single**: session starts (1 GPU, internal API, as the hub sends them) one at a time,
  each stopped again (the stop is not timed): the cost of one admission with no contention.
- **burst**: the project holds 4 of its 8 GPUs (an open 4-GPU session); then ``--burst``
  requests (default 200) fire at the same moment, alternately a 1-GPU session start and a
  1-GPU job submission. p50/p95 of all answers, the number admitted (must be exactly the 4
  GPUs left) and the refusals.

Run at two history sizes (``--history 1000,100000``) it shows whether admission cost grows
with history (it should not: the ledger holds the closed total; only open work is read).

    .venv/bin/python -m bench.admission_bench [--history 1000,100000] [--burst 200]
        [--repeat 100] [--databases sqlite,postgresql] [--database-url postgresql+psycopg://...]

PostgreSQL: a private server is started (the tests' ``tests/postgres.py``) unless
``--database-url`` names one (a database named ``admission_bench_<n>`` is created on it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness import free_port, test_settings, wait_until  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
PREFIX = "/services/portal/"
USERS = ["alice", "bob"]
CAP, HELD = 8, 4
BATCH = 5000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def settings_doc(state: Path) -> dict:
    doc = test_settings(state, dict.fromkeys(USERS, "pw"))
    allocation = {"gpu_hours": 10**7, "max_concurrent_gpus": CAP, "storage_quota_gb": 1}
    allocation |= {"valid_from": "2026-01-01", "valid_until": "2030-12-31"}
    doc["projects"] = [
        {
            "slug": "bench",
            "title": "Admission benchmark",
            "allocation": allocation,
            "members": [{"user": name} for name in USERS],
        }
    ]
    doc["datasets"] = []
    doc["flavors"].append(
        {"slug": "a100x4", "display_name": "4 x A100", "cpu": 32, "memory": "256Gi", "gpus": 4}
    )
    doc["jobs"]["partitions"].append(
        {"name": "gpu", "gpus_per_node": 4, "max_nodes": 2, "max_time_minutes": 600}
    )
    return doc


def seed_history(database_url: str, settings_path: Path, records: int) -> float:
    """Migrate, apply the settings, bulk-insert ``records`` closed sessions and ended jobs
    of the project, and charge them to its ledger; returns the seconds it took."""
    os.environ["AITESTBED_DATABASE_URL"] = database_url
    from aitestbed.portal import ledger, models
    from aitestbed.portal.db import session_factory, transaction
    from aitestbed.portal.service import prepare_database
    from aitestbed.settings import load_settings
    from sqlalchemy import insert, select

    started = time.perf_counter()
    engine = prepare_database(load_settings(settings_path))
    rng = random.Random(14)
    begin = datetime(2026, 1, 1, tzinfo=UTC)
    with transaction(session_factory(engine)) as session:
        project = session.scalar(select(models.Project.id).where(models.Project.slug == "bench"))
        user = session.scalar(select(models.User.id).where(models.User.name == "alice"))
    total = 0.0
    for first in range(0, records, BATCH):
        count = min(BATCH, records - first)
        sessions, jobs = [], []
        for i in range(first, first + count):
            start = begin + timedelta(minutes=rng.randrange(400_000))
            hours = rng.choice((0.5, 1, 2, 8))
            gpus = rng.choice((0.0, 1 / 7, 1.0, 2.0))
            sessions.append(
                {
                    "user_id": user,
                    "project_id": project,
                    "server_name": "",
                    "flavor": "a100x1",
                    "image": "pytorch",
                    "gpus": gpus,
                    "started_at": start,
                    "stopped_at": start + timedelta(hours=hours),
                    "gpu_hours": gpus * hours,
                }
            )
            job_gpus = rng.choice((0, 1, 4))
            jobs.append(
                {
                    "uid": f"h{i:011d}",
                    "owner": "alice",
                    "unix_user": "alice",
                    "project_id": project,
                    "name": f"history-{i}",
                    "kind": "command",
                    "spec": {},
                    "backend": "local",
                    "backend_job_id": f"h{i:011d}",
                    "state": rng.choice(("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")),
                    "reason": "",
                    "partition": "gpu",
                    "nodes": 1,
                    "gpus_per_node": job_gpus,
                    "time_limit_minutes": 60,
                    "working_dir": "/tmp",
                    "output_path": "/tmp/out",
                    "submitted_at": start,
                    "started_at": start,
                    "ended_at": start + timedelta(hours=hours),
                    "gpu_hours_charged": job_gpus * hours,
                }
            )
            total += gpus * hours + job_gpus * hours
        with transaction(session_factory(engine)) as session:
            session.execute(insert(models.SessionRecord), sessions)
            session.execute(insert(models.Job), jobs)
    with transaction(session_factory(engine)) as session:
        ledger.charge(session, {project: total})
    if engine.dialect.name == "postgresql":  # statistics, as autovacuum would keep them
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


def decide(database_url: str, repeat: int) -> dict:
    """One job admission in-process, without HTTP: lock, read the usage, decide (then roll
    back). What the database part of admission costs at this history size."""
    from aitestbed.portal import admission, models
    from aitestbed.portal.db import make_engine, session_factory
    from sqlalchemy import select

    engine = make_engine(database_url)
    sessions = session_factory(engine)
    timings = []
    for i in range(repeat + 5):
        with sessions() as session:
            started = time.perf_counter()
            with session.begin():
                admission.lock_project(session, "bench")
                project = session.scalar(
                    select(models.Project).where(models.Project.slug == "bench")
                )
                refusal = admission.admit_job(session, project, 1, 60, datetime.now(UTC))
                elapsed = (time.perf_counter() - started) * 1000
                session.rollback()
        assert refusal is None, refusal
        if i >= 5:
            timings.append(elapsed)
    engine.dispose()
    return {"requests": repeat, "p50_ms": round(percentile(timings, 0.5), 3),
            "p95_ms": round(percentile(timings, 0.95), 3)}  # fmt: skip


class Portal:
    def __init__(self, settings_path: Path, database_url: str, log: Path) -> None:
        self.token = secrets.token_hex(16)
        port = free_port()
        arguments = [str(settings_path), str(port), self.token, *USERS]
        self.base = f"http://127.0.0.1:{port}{PREFIX}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.portal_process", *arguments],
            cwd=REPO,
            env={**os.environ, "AITESTBED_DATABASE_URL": database_url},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=120, what="the portal process")
        self.hub = {"Authorization": f"token {self.token}"}

    def _answers(self) -> bool:
        assert self.process.poll() is None, "the portal process exited"
        with contextlib.suppress(requests.RequestException):
            return requests.get(self.base + "api/health", timeout=2).status_code == 200
        return False

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)

    def start_session(self, http, user: str, server: str, flavor: str = "a100x1"):
        body = {"user": user, "server_name": server, "project": "bench", "flavor": flavor}
        return http.post(
            self.base + "api/internal/sessions",
            json={**body, "image": "pytorch"},
            headers=self.hub,
            timeout=300,
        )

    def stop_session(self, http, record_id: int) -> None:
        http.post(
            f"{self.base}api/internal/sessions/{record_id}/stop", headers=self.hub, timeout=60
        ).raise_for_status()

    def submit(self, http, user: str):
        body = {"project": "bench", "partition": "gpu", "gpus_per_node": 1}
        body |= {"command": ["sleep", "600"], "time_limit_minutes": 60}
        return http.post(
            self.base + "api/jobs",
            json=body,
            headers={"Authorization": f"token t-{user}"},
            timeout=300,
        )


def single(portal: Portal, repeat: int) -> dict:
    http = requests.Session()
    timings = []
    for i in range(repeat + 5):
        started = time.perf_counter()
        response = portal.start_session(http, "alice", f"single-{i}")
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        portal.stop_session(http, response.json()["id"])
        if i >= 5:  # the first five warm the connection and the server up
            timings.append(elapsed)
    return {"requests": repeat, "p50_ms": round(percentile(timings, 0.5), 2),
            "p95_ms": round(percentile(timings, 0.95), 2)}  # fmt: skip


def burst(portal: Portal, size: int) -> dict:
    http = requests.Session()
    held = portal.start_session(http, "bob", "held", flavor="a100x4")
    held.raise_for_status()
    gate = threading.Barrier(size)

    def fire(i: int):
        gate.wait()
        started = time.perf_counter()
        with requests.Session() as own:
            if i % 2:
                response = portal.start_session(own, USERS[i % 2], f"burst-{i}")
            else:
                response = portal.submit(own, USERS[i % 2])
        return response, (time.perf_counter() - started) * 1000

    wall = time.perf_counter()
    with ThreadPoolExecutor(size) as pool:
        answers = list(pool.map(fire, range(size)))
    wall = time.perf_counter() - wall
    timings = [ms for _, ms in answers]
    codes: dict[int, int] = {}
    for response, _ in answers:
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
    admitted = codes.get(201, 0)
    # Leave the project as it was: stop the sessions, cancel the jobs.
    for response, _ in answers:
        if response.status_code == 201:
            body = response.json()
            if "state" in body:
                owner = {"Authorization": f"token t-{body['owner']}"}
                http.post(f"{portal.base}api/jobs/{body['id']}/cancel", headers=owner, timeout=60)
            else:
                portal.stop_session(http, body["id"])
    portal.stop_session(http, held.json()["id"])
    return {
        "requests": size,
        "room_before": CAP - HELD,
        "admitted": admitted,
        "admitted_equals_room": admitted == CAP - HELD,
        "answers": {str(k): v for k, v in sorted(codes.items())},
        "p50_ms": round(percentile(timings, 0.5), 2),
        "p95_ms": round(percentile(timings, 0.95), 2),
        "max_ms": round(max(timings), 2),
        "wall_seconds": round(wall, 2),
    }


def run_database(name: str, url_for, histories: list[int], args, work: Path) -> list[dict]:
    rows = []
    for records in histories:
        case = work / f"{name}-{records}"
        (case / "state" / "homes" / "alice").mkdir(parents=True)
        (case / "state" / "homes" / "bob").mkdir(parents=True)
        settings_path = case / "settings.yaml"
        settings_path.write_text(yaml.safe_dump(settings_doc(case / "state")))
        url = url_for(case, records)
        seeded = seed_history(url, settings_path, records)
        portal = Portal(settings_path, url, case / "portal.log")
        try:
            row = {"database": name, "history": records, "seed_seconds": round(seeded, 1)}
            row["decide"] = decide(url, args.repeat)
            row["single"] = single(portal, args.repeat)
            row["burst"] = burst(portal, args.burst)
        finally:
            portal.stop()
            from aitestbed.portal.jobs.local import LocalBackend

            backend = LocalBackend(case / "state" / "jobs")
            for job_dir in (case / "state" / "jobs").glob("*"):
                backend.cancel(job_dir.name, "")
        rows.append(row)
        print(_line(row), flush=True)
    return rows


HEADER = (
    f"{'database':<11}{'history':>9}{'decide p50':>12}{'p95':>8}{'single p50':>12}{'p95':>8}"
    f"{'burst p50':>11}{'p95':>9}{'admitted':>10}{'room':>6}{'wall s':>8}"
)


def _line(row: dict) -> str:
    d, s, b = row["decide"], row["single"], row["burst"]
    return (
        f"{row['database']:<11}{row['history']:>9}{d['p50_ms']:>12}{d['p95_ms']:>8}"
        f"{s['p50_ms']:>12}{s['p95_ms']:>8}"
        f"{b['p50_ms']:>11}{b['p95_ms']:>9}{b['admitted']:>10}{b['room_before']:>6}"
        f"{b['wall_seconds']:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", default="1000,100000", help="history sizes, comma-separated")
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--database-url", help="a PostgreSQL server to use instead of a private one"
    )
    args = parser.parse_args()
    histories = [int(h) for h in args.history.split(",")]
    load_before = os.getloadavg()
    rows: list[dict] = []
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="aitestbed-admission-") as work:
        for name in args.databases.split(","):
            if name == "sqlite":
                rows += run_database(
                    name, lambda case, _n: f"sqlite:///{case / 'portal.sqlite'}", histories,
                    args, Path(work),
                )  # fmt: skip
                continue
            with contextlib.ExitStack() as stack:
                server = args.database_url
                if not server:
                    from tests.postgres import private_postgres

                    server = stack.enter_context(private_postgres())
                rows += run_database(name, _postgres_database(server), histories, args, Path(work))
    report = {
        "benchmark": "admission",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_before": load_before, "load_after": os.getloadavg()},
        "cap": CAP,
        "held_before_burst": HELD,
        "rows": rows,
    }  # fmt: skip
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"admission-{int(time.time())}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nload average before {load_before}, after {os.getloadavg()}")
    print(f"Written to {out}")
    if not all(row["burst"]["admitted_equals_room"] for row in rows):
        sys.exit("A burst admitted a number other than the room left under the cap.")


def _postgres_database(server: str):
    import psycopg

    def url_for(_case: Path, records: int) -> str:
        name = f"admission_bench_{records}_{os.getpid()}"
        admin = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"{server}/{name}"

    return url_for


if __name__ == "__main__":
    main()
