"""The portal's session admission and usage records, and the usage API/CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from aitestbed.portal import models
from aitestbed.portal.app import create_app
from aitestbed.portal.db import session_factory
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import EXAMPLE_SETTINGS
from tests.unit.test_portal_api import PREFIX, TableIdentity

HUB = {"Authorization": "token hub-secret"}


@pytest.fixture
def portal(database_url, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    app = create_app(
        engine=engine, identity=TableIdentity(), prefix=PREFIX, internal_token="hub-secret"
    )
    with TestClient(app) as client:
        yield client, engine
    engine.dispose()


def start(client, **fields):
    body = {"user": "alice", "project": "acme-vision", "flavor": "a100x1", "image": "pytorch"}
    return client.post(PREFIX + "api/internal/sessions", json={**body, **fields}, headers=HUB)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "token t-alice"}, {"Authorization": "token hub-secre"}]
)
def test_only_the_hub_may_admit_or_stop(portal, headers):
    client, _ = portal
    body = {"user": "alice", "project": "acme-vision", "flavor": "a100x1", "image": "pytorch"}
    assert (
        client.post(PREFIX + "api/internal/sessions", json=body, headers=headers).status_code == 403
    )
    assert (
        client.get(PREFIX + "api/internal/spawn-context/alice", headers=headers).status_code == 403
    )
    assert client.post(PREFIX + "api/internal/sessions/1/stop", headers=headers).status_code == 403


def test_spawn_context_has_projects_usage_and_catalog(portal):
    client, _ = portal
    context = client.get(PREFIX + "api/internal/spawn-context/bob", headers=HUB).json()
    assert [p["slug"] for p in context["projects"]] == ["acme-vision", "uni-nlp"]
    assert context["projects"][1]["allowed_images"] == ["python-cpu"]
    assert {f["slug"] for f in context["flavors"]} == {"cpu-small", "a100-1g-10gb", "a100x1"}
    assert context["sessions_by_flavor"] == {}


def test_admission_records_and_enforces_the_gpu_cap(portal):
    client, _ = portal
    ids = [start(client).json()["id"] for _ in range(4)]  # acme-vision: 4 concurrent GPUs
    assert len(set(ids)) == 4
    refused = start(client, user="bob")
    assert refused.status_code == 403
    assert refused.json()["detail"]["code"] == "gpu-cap-reached"
    assert start(client, user="bob", flavor="cpu-small", image="python-cpu").status_code == 201
    stopped = client.post(PREFIX + f"api/internal/sessions/{ids[0]}/stop", headers=HUB)
    assert stopped.status_code == 200 and stopped.json()["gpu_hours"] >= 0
    assert start(client, user="bob").status_code == 201  # a GPU was freed
    context = client.get(PREFIX + "api/internal/spawn-context/alice", headers=HUB).json()
    assert context["projects"][0]["gpus_in_use"] == 4
    assert context["sessions_by_flavor"] == {"a100x1": 4, "cpu-small": 1}


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"project": "uni-nlp"}, 403, "not-a-member"),
        (
            {"user": "bob", "project": "uni-nlp", "flavor": "a100x1", "image": "python-cpu"},
            403,
            "flavor-not-allowed",
        ),
        ({"user": "bob", "project": "uni-nlp", "flavor": "cpu-small"}, 403, "image-not-allowed"),
        ({"image": "made-up"}, 403, "unknown-image"),
        ({"flavor": "a100x1; rm -rf /"}, 422, None),
        ({"project": "../uni-nlp"}, 422, None),
        ({"user": "Alice<script>"}, 422, None),
    ],
)
def test_refusals_create_no_record(portal, fields, status, code):
    client, engine = portal
    response = start(client, **fields)
    assert response.status_code == status
    if code:
        assert response.json()["detail"]["code"] == code
    with session_factory(engine)() as session:
        assert session.scalars(select(models.SessionRecord)).all() == []


def test_stop_charges_gpu_hours_once(portal):
    client, engine = portal
    record_id = start(client, flavor="a100-1g-10gb").json()["id"]
    with session_factory(engine)() as session, session.begin():
        record = session.get(models.SessionRecord, record_id)
        record.started_at = datetime.now(UTC) - timedelta(hours=7)
    first = client.post(PREFIX + f"api/internal/sessions/{record_id}/stop", headers=HUB).json()
    assert first["gpu_hours"] == pytest.approx(1.0, rel=1e-3)  # 7 h of a 1/7 slice
    again = client.post(PREFIX + f"api/internal/sessions/{record_id}/stop", headers=HUB).json()
    assert again["gpu_hours"] == first["gpu_hours"]
    assert client.post(PREFIX + "api/internal/sessions/999/stop", headers=HUB).status_code == 404


def test_budget_used_up_refuses_gpu_but_not_cpu(portal):
    client, engine = portal
    record_id = start(client, flavor="a100x1").json()["id"]
    with session_factory(engine)() as session, session.begin():
        session.get(models.SessionRecord, record_id).started_at = datetime.now(UTC) - timedelta(
            hours=2001
        )
    client.post(PREFIX + f"api/internal/sessions/{record_id}/stop", headers=HUB)
    refused = start(client)
    assert refused.json()["detail"]["code"] == "budget-exhausted"
    assert start(client, flavor="cpu-small", image="python-cpu").status_code == 201


def test_usage_api_and_csv(portal):
    client, _ = portal
    start(client)
    alice = client.get(PREFIX + "api/usage", headers={"Authorization": "token t-alice"}).json()
    assert [(u["slug"], u["running_sessions"], u["gpus_in_use"]) for u in alice] == [
        ("acme-vision", 1, 1.0)
    ]
    assert (
        client.get(PREFIX + "api/usage.csv", headers={"Authorization": "token t-alice"}).status_code
        == 403
    )
    exported = client.get(PREFIX + "api/usage.csv", headers={"Authorization": "token t-olivia"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["project"] for r in rows] == ["acme-vision", "dl-101", "uni-nlp"]
    assert rows[0]["gpus_in_use"] == "1.0" and rows[0]["gpu_hours_budget"] == "2000.0"


def test_usage_page_for_members_and_operators(portal):
    from aitestbed.portal.auth import TOKEN_COOKIE

    client, _ = portal
    start(client)
    client.cookies.set(TOKEN_COOKIE, "t-alice")
    page = client.get(PREFIX + "usage").text
    assert "ACME Vision (startup)" in page and "University NLP lab" not in page
    assert "1 / 4" in page and "Export usage as CSV" not in page
    assert "dataset-audit.csv" not in page
    client.cookies.set(TOKEN_COOKIE, "t-olivia")
    page = client.get(PREFIX + "usage").text
    assert "University NLP lab" in page and "Every project (you are an operator)." in page
    assert "api/usage.csv" in page
    # The export links are GETs: the browser's cookie is honoured for them.
    assert "api/dataset-audit.csv" in page
    audit = client.get(PREFIX + "api/dataset-audit.csv")
    assert audit.status_code == 200 and audit.text.startswith("id,at,user,dataset,action")
    client.cookies.clear()


def test_reconcile_closes_records_of_servers_the_hub_no_longer_runs(portal):
    from aitestbed.portal.reconcile import close_stale, running_servers, stale_records

    assert stale_records([(1, "a", ""), (2, "b", ""), (3, "a", "gpu")], {("a", "")}) == [2, 3]
    hub_users = [{"name": "alice", "servers": {"": {}}}, {"name": "bob", "servers": {}}]
    assert running_servers(hub_users) == {("alice", "")}
    client, engine = portal
    alice = start(client).json()["id"]
    bob = start(client, user="bob").json()["id"]
    # Both are counted while open: 2 GPUs of acme-vision in use, nothing charged yet.
    before = client.get(PREFIX + "api/internal/spawn-context/alice", headers=HUB).json()
    assert (before["projects"][0]["gpus_in_use"], before["projects"][0]["running_sessions"]) == (
        2,
        2,
    )
    with session_factory(engine)() as session:
        bob_record = session.get(models.SessionRecord, bob)
        assert (bob_record.stopped_at, bob_record.gpu_hours) == (None, None)
    # An hour later the hub runs only alice's server: bob's record is closed and charged.
    later = datetime.now(UTC) + timedelta(hours=1)
    with session_factory(engine)() as session, session.begin():
        assert close_stale(session, {("alice", "")}, later) == [bob]
    with session_factory(engine)() as session:
        assert session.get(models.SessionRecord, alice).stopped_at is None
        bob_record = session.get(models.SessionRecord, bob)
        assert bob_record.stopped_at is not None
        assert bob_record.gpu_hours == pytest.approx(1.0, abs=0.01)  # 1 GPU x 1 hour
    after = client.get(PREFIX + "api/internal/spawn-context/alice", headers=HUB).json()
    assert (after["projects"][0]["gpus_in_use"], after["projects"][0]["running_sessions"]) == (
        1,
        1,
    )
    assert after["projects"][0]["gpu_hours_used"] == pytest.approx(1.0, abs=0.01)
