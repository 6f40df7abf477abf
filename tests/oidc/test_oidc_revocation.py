"""Revocation that takes effect: a user removed from a project group at the provider while
their server runs is warned, the server is stopped after the grace, and the usage record is
closed (real OpenID Connect provider, real hub, real JupyterLab)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests

from tests.harness import free_port, running_portal, wait_until
from tests.oidc.provider import node_available, oidc_settings, provider_login, running_provider

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not node_available(), reason="node + npm ci (oidc-provider) needed"),
]

SECRET = "revocation-test-client-secret-91d3"
GRACE = 8


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sso-revocation")
    hub_url = f"http://127.0.0.1:{free_port()}"
    secret_file = workdir / "client-secret"
    secret_file.write_text(SECRET)
    with running_provider(workdir / "provider", hub_url, SECRET) as provider:
        authentication = oidc_settings(provider, secret_file, refresh_age_seconds=1)
        with running_portal(
            workdir / "portal",
            {},
            bind_url=hub_url,
            sections={"authentication": authentication},
            revocation_grace_seconds=GRACE,
        ) as portal:
            yield portal, provider


def _xsrf(session) -> dict[str, str]:
    return {"X-XSRFToken": session.cookies.get("_xsrf", "", path="/hub/")}


def _api(portal, token, path):
    response = requests.get(
        f"{portal.portal_url}api/{path}", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def _project_usage(portal, token, slug):
    (usage,) = [u for u in _api(portal, token, "usage") if u["slug"] == slug]
    return usage


def _operator_token(portal, provider) -> str:
    provider.set_user("olga", "olga-pw", ["aitestbed-users", "aitestbed-operators"])
    operator, _ = provider_login(portal.url, "olga", "olga-pw")
    created = operator.post(
        f"{portal.url}/hub/api/users/olga/tokens",
        json={"note": "revocation test", "expires_in": 600},
        headers=_xsrf(operator),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return created.json()["token"]


def test_membership_removed_at_the_provider_warns_then_stops_the_running_session(sso):
    portal, provider = sso
    provider.set_user("rosa", "rosa-pw", ["aitestbed-users", "acme-vision-users"])
    session, _ = provider_login(portal.url, "rosa", "rosa-pw")
    session.post(
        f"{portal.url}/hub/spawn/rosa",
        data={"project": "acme-vision"},
        headers=_xsrf(session),
        timeout=120,
    )

    def server():
        return session.get(f"{portal.url}/hub/api/users/rosa", timeout=30).json()["servers"]

    wait_until(lambda: server().get("", {}).get("ready"), timeout=120, what="rosa's server")
    created = session.post(
        f"{portal.url}/hub/api/users/rosa/tokens",
        json={"note": "revocation test", "expires_in": 600},
        headers=_xsrf(session),
        timeout=30,
    )
    token = created.json()["token"]
    assert _project_usage(portal, token, "acme-vision")["running_sessions"] == 1

    # Out of the project group at the provider: the next request rechecks rosa there
    # (refresh age 1 s) and the portal removes her single sign-on membership.
    provider.set_user("rosa", "rosa-pw", ["aitestbed-users"])
    time.sleep(1.5)
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).json()["name"] == "rosa"

    def warned():
        log = _api(portal, token, "session-revocations")
        return log[0] if log else None

    notice = wait_until(warned, timeout=30, what="the revocation warning")
    assert (notice["user"], notice["project"], notice["code"]) == (
        "rosa",
        "acme-vision",
        "membership-removed",
    )
    assert notice["reason"].startswith("You are no longer a member of project acme-vision")
    warned_at = datetime.fromisoformat(notice["warned_at"])
    stop_at = datetime.fromisoformat(notice["stop_at"])
    assert (stop_at - warned_at).total_seconds() == GRACE
    assert notice["stopped_at"] is None
    assert "" in server(), "the server runs on during the grace"
    # The warning is on rosa's pages: the portal's and the hub's.
    page = session.get(f"{portal.portal_url}access", timeout=60)
    assert page.status_code == 200
    assert "You are no longer a member of project acme-vision" in page.text
    assert "save your work now" in page.text

    def hub_home_warns():
        home = session.get(f"{portal.url}/hub/home", timeout=30).text
        return "revocation-notice" in home and "no longer a member of project acme-vision" in home

    wait_until(hub_home_warns, timeout=20, interval=0.5, what="the hub's home page warning")

    wait_until(lambda: "" not in server(), timeout=GRACE + 60, what="the server to stop")
    (notice,) = _api(portal, token, "session-revocations")
    assert datetime.fromisoformat(notice["stopped_at"]) >= stop_at
    page = session.get(f"{portal.portal_url}access", timeout=60)
    assert "It was stopped at" in page.text
    assert "Stopped rosa's server '': access to project acme-vision ended" in portal.log()
    # The usage record is closed: the project is charged no further (as an operator sees).
    operator_token = _operator_token(portal, provider)
    closed = _project_usage(portal, operator_token, "acme-vision")
    assert (closed["running_sessions"], closed["gpus_in_use"]) == (0, 0)
    time.sleep(1)
    later = _project_usage(portal, operator_token, "acme-vision")
    assert later["gpu_hours_used"] == closed["gpu_hours_used"]
    (audited,) = [
        r for r in _api(portal, operator_token, "session-revocations") if r["user"] == "rosa"
    ]
    assert audited["stopped_at"] == notice["stopped_at"]

    # A new start is refused: rosa belongs to no project any more (no mounts of it either).
    again = session.post(
        f"{portal.url}/hub/spawn/rosa",
        data={"project": "acme-vision"},
        headers=_xsrf(session),
        timeout=120,
    )
    assert again.status_code == 403
    assert "You belong to no active project yet, so no server can start." in again.text
    assert "<a href='/services/portal/access' class='alert-link'>Ask for access</a>" in again.text
    assert "HTTP 403" not in again.text
