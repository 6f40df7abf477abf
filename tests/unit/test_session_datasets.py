"""Which datasets an admitted session mounts: the portal's answer to the hub, and the audit."""

from __future__ import annotations

import pytest
from aitestbed.portal import models
from aitestbed.portal.app import create_app
from aitestbed.portal.db import session_factory
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.datasets_support import accept_terms, audit_entries, local_section
from tests.jobs_support import write_settings
from tests.unit.test_portal_api import PREFIX, TableIdentity

HUB = {"Authorization": "token hub-secret"}


@pytest.fixture
def portal(database_url, monkeypatch, tmp_path, settings_doc):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    settings_doc["datasets"] = local_section(tmp_path / "data")
    settings = load_settings(write_settings(tmp_path / "settings.yaml", settings_doc))
    engine = prepare_database(settings)
    app = create_app(
        engine=engine, identity=TableIdentity(), prefix=PREFIX, internal_token="hub-secret"
    )
    with TestClient(app) as client:
        yield client, session_factory(engine), tmp_path / "data"
    engine.dispose()


def start(client, user, project, server_name=""):
    body = {
        "user": user,
        "server_name": server_name,
        "project": project,
        "flavor": "cpu-small",
        "image": "python-cpu",
    }
    response = client.post(PREFIX + "api/internal/sessions", json=body, headers=HUB)
    assert response.status_code == 201, response.text
    return response.json()


def mounted(answer):
    return [d["slug"] for d in answer["datasets"]]


def refused(answer):
    return [(d["slug"], d["code"]) for d in answer["refused_datasets"]]


def test_each_user_mounts_exactly_the_entitled_and_accepted_datasets(portal):
    client, _, _ = portal
    alice = start(client, "alice", "acme-vision")
    assert mounted(alice) == ["iris"]  # digits: terms not accepted; wine: not her project's
    assert refused(alice) == [("digits", "terms-not-accepted")]
    assert "accept_terms('digits')" in alice["refused_datasets"][0]["reason"]
    bob_nlp = start(client, "bob", "uni-nlp")
    assert mounted(bob_nlp) == ["iris", "wine"] and refused(bob_nlp) == []
    # The same user in another project: wine is granted to uni-nlp only.
    bob_vision = start(client, "bob", "acme-vision")
    assert mounted(bob_vision) == ["iris"]
    assert refused(bob_vision) == [("digits", "terms-not-accepted")]


def test_accepted_terms_mount_the_dataset_with_where_its_files_are(portal):
    client, sessions, data = portal
    with sessions() as session, session.begin():
        accept_terms(session, "alice", "digits")
    answer = start(client, "alice", "acme-vision")
    assert mounted(answer) == ["digits", "iris"] and refused(answer) == []
    digits = answer["datasets"][0]
    assert digits["mount_path"] == "/datasets/digits"
    assert digits["storage"] == {"kind": "local", "path": str(data / "digits")}
    assert digits["version"] == "1" and digits["cluster_path"] is None
    # Bob has not accepted: his acceptance is his own.
    assert refused(start(client, "bob", "acme-vision")) == [("digits", "terms-not-accepted")]


def test_an_old_terms_version_does_not_count(portal):
    client, sessions, _ = portal
    with sessions() as session, session.begin():
        accept_terms(session, "alice", "digits", version="0")
    assert refused(start(client, "alice", "acme-vision")) == [("digits", "terms-not-accepted")]


def test_withdrawn_datasets_are_neither_mounted_nor_mentioned(portal):
    client, sessions, _ = portal
    with sessions() as session, session.begin():
        session.scalar(select(models.Dataset).where(models.Dataset.slug == "iris")).enabled = False
    answer = start(client, "bob", "uni-nlp")
    assert mounted(answer) == ["wine"] and refused(answer) == []


def test_every_mount_decision_is_audited_with_the_session(portal):
    client, sessions, _ = portal
    alice = start(client, "alice", "acme-vision", server_name="gpu")
    bob = start(client, "bob", "uni-nlp")
    with sessions() as session:
        assert audit_entries(session, "mount") == [
            ("alice", "iris", True, "acme-vision"),
            ("alice", "digits", False, "acme-vision"),
            ("bob", "iris", True, "uni-nlp"),
            ("bob", "wine", True, "uni-nlp"),
        ]
        rows = list(
            session.scalars(select(models.DatasetAuditEntry).order_by(models.DatasetAuditEntry.id))
        )
    assert rows[0].detail == f"server=gpu session={alice['id']}"
    assert rows[2].detail == f"server=(default) session={bob['id']}"
    assert rows[1].reason.startswith("terms-not-accepted: Accept version 1")


def test_a_refused_start_mounts_and_audits_nothing(portal):
    client, sessions, _ = portal
    body = {"user": "carol", "project": "acme-vision", "flavor": "cpu-small", "image": "python-cpu"}
    response = client.post(PREFIX + "api/internal/sessions", json=body, headers=HUB)
    assert response.status_code == 403
    with sessions() as session:
        assert audit_entries(session, "mount") == []


def test_the_spawn_context_says_what_each_project_would_mount_without_deciding(portal):
    client, sessions, _ = portal
    context = client.get(PREFIX + "api/internal/spawn-context/bob", headers=HUB).json()
    datasets = context["datasets"]
    assert datasets["uni-nlp"] == {
        "mounted": ["iris", "wine"],
        "refused": [],
        "safe_mode": False,
        "safe_mode_reason": "",
    }
    assert datasets["acme-vision"]["mounted"] == ["iris"]
    assert [r["slug"] for r in datasets["acme-vision"]["refused"]] == ["digits"]
    assert "accept" in datasets["acme-vision"]["refused"][0]["reason"]
    # Showing the page is no access decision: nothing is audited until a start.
    with sessions() as session:
        assert audit_entries(session, "mount") == []
    nobody = client.get(PREFIX + "api/internal/spawn-context/carol", headers=HUB).json()
    assert nobody["datasets"] == {}
