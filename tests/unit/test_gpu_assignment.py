"""Exclusive GPUs in the embedded default: the portal's admission gives each GPU session
its own devices, never one twice (also under a burst across projects, SQLite and
PostgreSQL), frees them when the session stops, and still knows them after a restart."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml
from aitestbed.gpu_inventory import SimulatedSource
from aitestbed.portal import models
from aitestbed.portal.app import create_app
from aitestbed.portal.db import session_factory
from aitestbed.portal.service import prepare_database
from aitestbed.settings import parse_settings
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import EXAMPLE_SETTINGS
from tests.unit.test_courses_api import served
from tests.unit.test_portal_api import PREFIX, TableIdentity

HUB = {"Authorization": "token hub-secret"}
PROJECTS = [f"lab{n}" for n in range(5)]
FULL = (
    "All {n} NVIDIA-A100-SXM4-80GB GPUs of this machine are in use right now, so the flavor "
    "'a100x1' cannot start; try again later or choose another flavor."
)


def settings_for(root, database_url):
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"].update({"state_dir": str(root / "state"), "database_url": database_url})
    doc["datasets"] = []
    doc["courses"] = []
    allocation = {
        "gpu_hours": 1000,
        "max_concurrent_gpus": 50,
        "valid_from": "2026-01-01",
        "valid_until": "2099-12-31",
    }
    doc["projects"] += [
        {"slug": slug, "title": slug, "allocation": allocation, "members": [{"user": "alice"}]}
        for slug in PROJECTS
    ]
    return parse_settings(yaml.safe_dump(doc), root / "settings.yaml")


def make_app(engine, gpus):
    return create_app(
        engine=engine,
        identity=TableIdentity(),
        prefix=PREFIX,
        internal_token="hub-secret",
        gpu_source=SimulatedSource(gpus),
    )


@contextlib.contextmanager
def portal(tmp_path, database_url, gpus=3):
    engine = prepare_database(settings_for(tmp_path, database_url))
    try:
        with TestClient(make_app(engine, gpus)) as client:
            yield client, engine
    finally:
        engine.dispose()


def start(client, project="acme-vision", flavor="a100x1", server=""):
    body = {
        "user": "alice",
        "project": project,
        "flavor": flavor,
        "image": "pytorch",
        "server_name": server,
    }
    return client.post(PREFIX + "api/internal/sessions", json=body, headers=HUB)


def stop(client, record_id):
    return client.post(PREFIX + f"api/internal/sessions/{record_id}/stop", headers=HUB)


def held(engine) -> dict[str, int | None]:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(models.GpuAssignment.device_uuid, models.GpuAssignment.session_record_id)
        )
        return dict(rows.all())


@pytest.fixture(autouse=True)
def no_database_override(monkeypatch):
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)


def test_sessions_get_their_own_devices_and_give_them_back(tmp_path, database_url):
    with portal(tmp_path, database_url) as (client, engine):
        answers = [start(client, project=p) for p in ("acme-vision", "lab0", "lab1")]
        assert [a.status_code for a in answers] == [201, 201, 201]
        devices = [a.json()["gpu_devices"] for a in answers]
        assert [d[0]["uuid"] for d in devices] == [f"GPU-simulated-000{i}" for i in range(3)]
        assert all(len(d) == 1 and d[0]["simulated"] for d in devices)
        refused = start(client, project="lab2")
        assert refused.status_code == 409
        assert refused.json()["detail"] == {"code": "no-capacity", "message": FULL.format(n=3)}
        # A CPU session needs no device and still starts.
        cpu = start(client, project="lab2", flavor="cpu-small")
        assert cpu.status_code == 201 and cpu.json()["gpu_devices"] == []
        middle = answers[1].json()["id"]
        assert held(engine)["GPU-simulated-0001"] == middle
        assert stop(client, middle).status_code == 200
        assert "GPU-simulated-0001" not in held(engine)
        assert stop(client, middle).status_code == 200  # again: nothing else is freed
        assert len(held(engine)) == 2
        again = start(client, project="lab2")
        assert again.status_code == 201
        assert again.json()["gpu_devices"][0]["uuid"] == "GPU-simulated-0001"


def test_spawn_context_counts_free_devices_and_says_why_a_flavor_cannot_run(tmp_path, database_url):
    with portal(tmp_path, database_url, gpus=2) as (client, _):
        assert start(client).status_code == 201
        context = client.get(PREFIX + "api/internal/spawn-context/alice", headers=HUB).json()
        assert context["gpu_places"] == {
            "a100x1": {"free": 1, "total": 2, "reason": ""},
            "a100-1g-10gb": {
                "free": 0,
                "total": 0,
                "reason": "This machine has no MIG 1g.10gb instance on NVIDIA-A100-SXM4-80GB "
                "GPUs, so the flavor 'a100-1g-10gb' cannot start here; choose another flavor "
                "or ask the operators.",
            },
        }
        assert context["gpu_note"].startswith("The GPUs of this machine are simulated")
        assert "advice, not a limit" in context["gpu_note"]
        refused = start(client, flavor="a100-1g-10gb")
        assert refused.status_code == 409
        assert (
            refused.json()["detail"]["message"] == context["gpu_places"]["a100-1g-10gb"]["reason"]
        )


def test_assignments_survive_a_portal_restart(tmp_path, database_url):
    with portal(tmp_path, database_url) as (client, engine):
        first = start(client).json()
        second = start(client, project="lab0").json()
        assert stop(client, first["id"]).status_code == 200
    # A new portal process (same database): it knows who holds what.
    with portal(tmp_path, database_url) as (client, engine):
        assert held(engine) == {"GPU-simulated-0001": second["id"]}
        answers = [start(client, project=p).json() for p in ("lab1", "lab2")]
        assert [a["gpu_devices"][0]["uuid"] for a in answers] == [
            "GPU-simulated-0000",
            "GPU-simulated-0002",
        ]
        assert start(client, project="lab3").status_code == 409


def test_a_burst_of_gpu_starts_gives_each_device_at_most_once(tmp_path, database_url):
    """30 starts at the same moment from five projects (PostgreSQL admits different projects
    in parallel) for 6 GPUs: exactly 6 start, each on a different device."""
    engine = prepare_database(settings_for(tmp_path, database_url))
    try:
        with served(make_app(engine, 6)) as api:

            def one(n):
                body = {
                    "user": "alice",
                    "project": PROJECTS[n % len(PROJECTS)],
                    "flavor": "a100x1",
                    "image": "pytorch",
                    "server_name": f"s{n}",
                }
                return httpx.post(api + "internal/sessions", json=body, headers=HUB, timeout=120)

            with ThreadPoolExecutor(30) as pool:
                answers = list(pool.map(one, range(30)))
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 6 + [409] * 24, [a.text for a in answers if a.status_code >= 500]
        assert {a.json()["detail"]["message"] for a in answers if a.status_code == 409} == {
            FULL.format(n=6)
        }
        given = [a.json()["gpu_devices"][0]["uuid"] for a in answers if a.status_code == 201]
        assert sorted(given) == [f"GPU-simulated-000{i}" for i in range(6)]
        records = {a.json()["id"] for a in answers if a.status_code == 201}
        assert set(held(engine).values()) == records
        with session_factory(engine)() as session:
            assert len(session.scalars(select(models.SessionRecord)).all()) == 6
    finally:
        engine.dispose()


def test_a_mixed_burst_of_sessions_and_local_jobs_shares_the_devices_exactly(
    tmp_path, database_url
):
    """10 GPU session starts and 10 one-GPU local jobs at the same moment for 4 GPUs:
    exactly 4 are admitted, whichever kind, each on its own device."""
    from aitestbed.portal.jobs.gateway import JobGateway
    from aitestbed.portal.jobs.local import LocalBackend

    from tests.unit.test_portal_api import TableIdentity as Tokens

    settings = settings_for(tmp_path, database_url)
    (tmp_path / "state" / "homes" / "alice").mkdir(parents=True)
    engine = prepare_database(settings)
    backend = LocalBackend(tmp_path / "state" / "jobs")
    source = SimulatedSource(4)
    gateway = JobGateway(session_factory(engine), settings, backend, gpu_source=source)
    app = create_app(
        engine=engine,
        identity=Tokens(),
        prefix=PREFIX,
        internal_token="hub-secret",
        jobs=gateway,
        gpu_source=source,
    )
    try:
        with served(app) as api:

            def one(n):
                project = PROJECTS[n % len(PROJECTS)]
                if n % 2:
                    body = {"project": project, "gpus_per_node": 1, "command": ["sleep", "60"]}
                    headers = {"Authorization": "token t-alice"}
                    return httpx.post(api + "jobs", json=body, headers=headers, timeout=120)
                body = {
                    "user": "alice",
                    "project": project,
                    "flavor": "a100x1",
                    "image": "pytorch",
                    "server_name": f"s{n}",
                }
                return httpx.post(api + "internal/sessions", json=body, headers=HUB, timeout=120)

            with ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(one, range(20)))
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 4 + [409] * 16, [a.text for a in answers if a.status_code >= 500]
        holders = held(engine)
        assert sorted(holders) == [f"GPU-simulated-000{i}" for i in range(4)]
        with session_factory(engine)() as session:
            jobs = session.scalars(select(models.GpuAssignment.job_id)).all()
            sessions = session.scalars(select(models.GpuAssignment.session_record_id)).all()
        admitted_jobs = sum(1 for a in answers if a.status_code == 201 and "uid" in a.json())
        assert len([j for j in jobs if j is not None]) == admitted_jobs
        assert len([s for s in sessions if s is not None]) == 4 - admitted_jobs
    finally:
        for job_dir in (tmp_path / "state" / "jobs").glob("*"):
            backend.cancel(job_dir.name, "")
        engine.dispose()


def test_the_reconcilers_close_gives_the_devices_back(tmp_path, database_url):
    """Records closed in bulk (the reconciler: servers the hub no longer runs) free their
    devices in the same transaction, and only theirs."""
    from datetime import UTC, datetime

    from aitestbed.portal import ledger
    from aitestbed.portal.db import transaction

    with portal(tmp_path, database_url) as (client, engine):
        ids = [start(client, project=p).json()["id"] for p in ("acme-vision", "lab0", "lab1")]
        with transaction(session_factory(engine)) as session:
            assert ledger.close_sessions(session, ids[:2], datetime.now(UTC)) == ids[:2]
        assert held(engine) == {"GPU-simulated-0002": ids[2]}
