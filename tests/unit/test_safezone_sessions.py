"""Safe mode at admission: a session that mounts pseudonymized data is safe, two
pseudonymized datasets need a linkage approval, grants out of force mount nothing; and the
hub side turns the answer into the spawn page's note (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from aitestbed.hub.policy_spawner import context_datasets
from aitestbed.hub.spawn_form import datasets_block
from aitestbed.portal.app import create_app
from aitestbed.portal.db import session_factory
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient

from tests.datasets_support import accept_terms, audit_entries, local_section
from tests.jobs_support import write_settings
from tests.unit.test_portal_api import PREFIX, TableIdentity
from tests.unit.test_session_datasets import HUB, mounted, refused, start

LATER = (date.today() + timedelta(days=90)).isoformat()
TERMS = {"version": "1", "text": "No re-identification."}


@pytest.fixture
def portal(database_url, monkeypatch, tmp_path, settings_doc):
    """digits and wine are pseudonymized; both granted to acme-vision (alice, bob)."""
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    section = {d["slug"]: d for d in local_section(tmp_path / "data")}
    section["digits"].update(
        {
            "class": "pseudonymized",
            "purposes": {"acme-vision": {"purpose": "ocr", "expires": LATER}},
        }
    )
    section["wine"].update(
        {
            "class": "pseudonymized",
            "projects": ["acme-vision"],
            "terms": TERMS,
            "purposes": {"acme-vision": {"purpose": "taste", "expires": LATER}},
        }
    )
    settings_doc["datasets"] = list(section.values())
    settings = load_settings(write_settings(tmp_path / "settings.yaml", settings_doc))
    engine = prepare_database(settings)
    app = create_app(
        engine=engine, identity=TableIdentity(), prefix=PREFIX, internal_token="hub-secret"
    )
    with TestClient(app) as client:
        yield client, session_factory(engine)
    engine.dispose()


def accept(sessions, user, *slugs):
    with sessions() as session, session.begin():
        for slug in slugs:
            accept_terms(session, user, slug)


def test_a_session_with_pseudonymized_data_is_safe_and_says_why(portal):
    client, sessions = portal
    accept(sessions, "alice", "digits")
    answer = start(client, "alice", "acme-vision")
    assert mounted(answer) == ["digits", "iris"]
    assert answer["safe_mode"] is True
    assert answer["safe_mode_reason"].startswith(
        "Safe mode: this session mounts pseudonymized data (digits)."
    )
    plain = start(client, "bob", "acme-vision", "other")  # bob accepted nothing
    assert (mounted(plain), plain["safe_mode"], plain["safe_mode_reason"]) == (["iris"], False, "")


def test_two_pseudonymized_datasets_need_a_linkage_approval(portal):
    client, sessions = portal
    accept(sessions, "bob", "digits", "wine")
    answer = start(client, "bob", "acme-vision")
    assert mounted(answer) == ["iris"]
    assert refused(answer) == [
        ("digits", "linkage-not-approved"),
        ("wine", "linkage-not-approved"),
    ]
    assert answer["safe_mode"] is False
    with sessions() as session:
        assert [e for e in audit_entries(session, "mount") if not e[2]] == [
            ("bob", "digits", False, "acme-vision"),
            ("bob", "wine", False, "acme-vision"),
        ]
    body = {"project": "acme-vision", "datasets": ["wine", "digits"], "reason": "study 7"}
    token = {"Authorization": "token t-alice"}
    assert client.post(PREFIX + "api/dataset-linkages", json=body, headers=token).status_code == 403
    approved = client.post(
        PREFIX + "api/dataset-linkages", json=body, headers={"Authorization": "token t-olivia"}
    )
    assert approved.status_code == 201, approved.text
    assert approved.json()["datasets"] == ["digits", "wine"]
    again = start(client, "bob", "acme-vision", "second")
    assert (mounted(again), again["safe_mode"]) == (["digits", "iris", "wine"], True)
    with sessions() as session:
        assert audit_entries(session, "linkage") == [
            ("olivia", "digits", True, "acme-vision"),
            ("olivia", "wine", True, "acme-vision"),
        ]


@pytest.mark.parametrize(
    ("datasets", "status", "code"),
    [(["digits", "digits"], 422, None), (["digits", "iris"], 409, "not-pseudonymized")],
)
def test_a_linkage_joins_two_pseudonymized_datasets(portal, datasets, status, code):
    client, _ = portal
    body = {"project": "acme-vision", "datasets": datasets, "reason": "x"}
    response = client.post(
        PREFIX + "api/dataset-linkages", json=body, headers={"Authorization": "token t-olivia"}
    )
    assert response.status_code == status
    if code:
        assert response.json()["detail"]["code"] == code


def test_the_spawn_page_shows_safe_mode_and_what_the_spawner_enforces(portal):
    client, sessions = portal
    accept(sessions, "alice", "digits")
    context = client.get(PREFIX + "api/internal/spawn-context/alice", headers=HUB).json()
    entry = context["datasets"]["acme-vision"]
    assert (entry["mounted"], entry["safe_mode"]) == (["digits", "iris"], True)
    shown = context_datasets(context, "The network is not closed here.")["acme-vision"]
    html = datasets_block(shown)
    assert "<div class='alert alert-warning aitb-safe-mode' role='note'><b>Safe mode.</b>" in html
    assert "pseudonymized data (digits)" in html
    assert html.endswith("<br>The network is not closed here.</div>")
    assert "aitb-safe-mode" not in datasets_block(context_datasets({"datasets": {"x": {}}})["x"])
