"""Access requests and single sign-on memberships in the portal database, through the API
(hub token check replaced by a table, as in test_portal_api) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from aitestbed.portal import models
from aitestbed.portal.app import create_app
from aitestbed.portal.auth import TOKEN_COOKIE
from aitestbed.portal.db import session_factory, transaction
from aitestbed.portal.directory import apply_sso_grants, has_active_project
from aitestbed.portal.pages import form_token
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import EXAMPLE_SETTINGS
from tests.unit.test_portal_api import PREFIX, TableIdentity

API = PREFIX + "api/access-requests"
TODAY = date(2026, 11, 26)


@pytest.fixture
def engine(database_url, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine):
    app = create_app(engine=engine, identity=TableIdentity(), prefix=PREFIX)
    with TestClient(app) as test_client:
        yield test_client


def auth(token):
    return {"Authorization": f"token {token}"}


def test_request_approve_and_the_requester_sees_it(client, engine):
    made = client.post(
        API, json={"project": "acme-vision", "reason": "Vision"}, headers=auth("t-carol")
    )
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    assert made.json()["status"] == "pending"
    again = client.post(API, json={"reason": "again"}, headers=auth("t-carol"))
    assert again.status_code == 409 and f"#{request_id}" in again.json()["detail"]

    # Others do not see it; operators (by settings or hub admin) do.
    assert client.get(API, headers=auth("t-bob")).json() == []
    assert client.get(f"{API}/{request_id}", headers=auth("t-bob")).status_code == 404
    pending = client.get(f"{API}?status=pending", headers=auth("t-olivia")).json()
    assert [r["user"] for r in pending] == ["carol"]

    for token in ("t-carol", "t-alice"):  # the requester and a project manager cannot decide
        decided = client.post(f"{API}/{request_id}/approve", json={}, headers=auth(token))
        assert decided.status_code == 403
    approved = client.post(
        f"{API}/{request_id}/approve",
        json={"role": "manager", "note": "ok"},
        headers=auth("t-admin"),
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["granted_project"], body["granted_role"], body["decided_by"]) == (
        "approved",
        "acme-vision",
        "manager",
        "root-admin",
    )
    assert client.get(f"{API}/{request_id}", headers=auth("t-carol")).json()["status"] == "approved"
    me = client.get(PREFIX + "api/me", headers=auth("t-carol")).json()
    assert [(p["slug"], p["role"]) for p in me["projects"]] == [("acme-vision", "manager")]
    # Decided once only.
    assert (
        client.post(f"{API}/{request_id}/decline", json={}, headers=auth("t-olivia")).status_code
        == 409
    )


def test_decline_and_approval_needs_a_real_project(client):
    request_id = client.post(API, json={"reason": "a course"}, headers=auth("t-carol")).json()["id"]
    missing = client.post(f"{API}/{request_id}/approve", json={}, headers=auth("t-olivia"))
    assert missing.status_code == 422 and "names no project" in missing.json()["detail"]
    unknown = client.post(
        f"{API}/{request_id}/approve", json={"project": "nope"}, headers=auth("t-olivia")
    )
    assert unknown.status_code == 422
    declined = client.post(
        f"{API}/{request_id}/decline",
        json={"note": "no course this term"},
        headers=auth("t-olivia"),
    )
    assert declined.json()["status"] == "declined"
    assert client.get(PREFIX + "api/me", headers=auth("t-carol")).json()["projects"] == []
    # After a decision a new request may be made.
    assert (
        client.post(API, json={"reason": "next term"}, headers=auth("t-carol")).status_code == 201
    )


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "x" * 2001}, {"reason": "x", "project": "../etc"}],
)
def test_bad_requests_are_refused(client, body):
    assert client.post(API, json=body, headers=auth("t-carol")).status_code == 422


def test_changes_need_a_header_token_not_the_cookie(client):
    client.cookies.set(TOKEN_COOKIE, "t-carol")
    assert client.post(API, json={"reason": "x"}).status_code == 401


def test_access_page_form_needs_the_form_token(client):
    client.cookies.set(TOKEN_COOKIE, "t-carol")
    page = client.get(PREFIX + "access")
    assert "no active project" in page.text and form_token("t-carol") in page.text
    form = {"reason": "for a thesis", "project": "", "form_token": "f" * 64}
    assert client.post(PREFIX + "access", data=form, follow_redirects=False).status_code == 403
    form["form_token"] = form_token("t-carol")
    sent = client.post(PREFIX + "access", data=form, follow_redirects=False)
    assert sent.status_code == 303
    assert "pending" in client.get(PREFIX + "access").text


def test_sso_grants_add_update_and_remove_only_their_own(engine):
    factory = session_factory(engine)
    with transaction(factory) as session:
        assert not has_active_project(session, "dana", TODAY)
        changes = apply_sso_grants(
            session,
            "dana",
            instructor=True,
            projects=[("acme-vision", "member"), ("gone", "member")],
        )
        assert changes == {"added": ["acme-vision"], "removed": [], "updated": []}
        assert has_active_project(session, "dana", TODAY)
        assert not has_active_project(session, "dana", date(2030, 1, 1))  # expired by then
    with transaction(factory) as session:
        changes = apply_sso_grants(
            session, "dana", instructor=False, projects=[("acme-vision", "manager")]
        )
        assert changes["updated"] == ["acme-vision"]
        # bob is a member of acme-vision from the settings: single sign-on leaves that alone.
        assert apply_sso_grants(session, "bob", instructor=False, projects=[]) == {
            "added": [],
            "removed": [],
            "updated": [],
        }
    with transaction(factory) as session:
        assert apply_sso_grants(session, "dana", instructor=False, projects=[])["removed"] == [
            "acme-vision"
        ]
        bob = session.scalar(select(models.User).where(models.User.name == "bob"))
        assert sorted(m.project.slug for m in bob.memberships) == ["acme-vision", "uni-nlp"]
        dana = session.scalar(select(models.User).where(models.User.name == "dana"))
        assert dana.memberships == [] and dana.is_instructor is False
