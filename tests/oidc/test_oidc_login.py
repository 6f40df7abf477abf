"""Single sign-on end to end: a real OpenID Connect provider (npm oidc-provider) on
127.0.0.1, the real hub + proxy + portal, real JupyterLab sessions."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import pytest
import requests

from tests.harness import free_port, running_portal, wait_until
from tests.oidc.provider import (
    FORM_ACTION,
    node_available,
    oidc_settings,
    provider_login,
    running_provider,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not node_available(), reason="node + npm ci (oidc-provider) needed"),
]

CLIENT_SECRET = "s3cr3t-client-value-that-must-not-leak-4f9d"
REFUSED = "not allowed to use this portal"
HUB_LOGIN_COOKIE = "jupyterhub-hub-login"


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    """(portal, provider) with the users of these tests at the provider."""
    workdir = tmp_path_factory.mktemp("sso")
    hub_url = f"http://127.0.0.1:{free_port()}"
    secret_file = workdir / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    with running_provider(workdir / "provider", hub_url, CLIENT_SECRET) as provider:
        provider.set_user("olga", "olga-pw", ["aitestbed-users", "aitestbed-operators"])
        with running_portal(
            workdir / "portal",
            {},
            bind_url=hub_url,
            sections={"authentication": oidc_settings(provider, secret_file)},
        ) as portal:
            yield portal, provider


def _xsrf(session) -> dict[str, str]:
    """The hub's XSRF header (the user's server sets an _xsrf cookie of its own)."""
    return {"X-XSRFToken": session.cookies.get("_xsrf", "", path="/hub/")}


def _wait_for_server(portal, session, name):
    def ready():
        model = session.get(f"{portal.url}/hub/api/users/{name}", timeout=10).json()
        return model["servers"].get("", {}).get("ready")

    wait_until(ready, timeout=120, what=f"{name}'s server")


def _stop_server(portal, session, name):
    session.delete(
        f"{portal.url}/hub/api/users/{name}/server",
        headers=_xsrf(session),
        timeout=60,
    )


def _operator(portal, provider):
    session, response = provider_login(portal.url, "olga", "olga-pw")
    assert response.status_code == 200, response.text[:300]
    return session


def _hub_user(portal, operator, name):
    return operator.get(f"{portal.url}/hub/api/users/{name}", timeout=30)


def _token(portal, session, name):
    response = session.post(
        f"{portal.url}/hub/api/users/{name}/tokens",
        json={"note": "sso test", "expires_in": 600},
        headers=_xsrf(session),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def _me(portal, session, name):
    headers = {"Authorization": f"token {_token(portal, session, name)}"}
    response = requests.get(f"{portal.portal_url}api/me", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_scripted_login_ends_in_jupyterlab(sso):
    portal, provider = sso
    provider.set_user("dana", "dana-pw", ["aitestbed-users", "acme-vision-users"])
    session, response = provider_login(portal.url, "dana", "dana-pw")
    # dana has a project: the login ends on the spawn page with it preselected.
    assert urlparse(response.url).path == "/hub/spawn"
    assert "ACME Vision" in response.text
    started = session.post(
        f"{portal.url}/hub/spawn/dana",
        data={"project": "acme-vision"},
        headers=_xsrf(session),
        timeout=120,
    )
    assert urlparse(started.url).path.startswith(("/hub/spawn-pending/dana", "/user/dana"))
    _wait_for_server(portal, session, "dana")
    try:
        lab = session.get(f"{portal.url}/user/dana/lab", timeout=60)
        assert lab.status_code == 200
        assert "JupyterLab" in lab.text
    finally:
        _stop_server(portal, session, "dana")


def test_wrong_password_at_the_provider_logs_nobody_in(sso):
    """What the hub does after a failed login at the provider: no hub login cookie, its
    pages send the browser to log in, no hub user is made, and the same browser can then
    log in with the right password (the failed try left no state behind)."""
    portal, provider = sso
    operator = _operator(portal, provider)
    provider.set_user("ivan", "ivan-pw", ["aitestbed-users"])
    session, response = provider_login(portal.url, "ivan", "wrong")
    assert "/interaction/" in response.url  # still at the provider's form
    assert HUB_LOGIN_COOKIE not in session.cookies
    home = session.get(f"{portal.url}/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302
    assert urlparse(home.headers["location"]).path == "/hub/login"
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).status_code == 403
    assert _hub_user(portal, operator, "ivan").status_code == 404

    session, response = provider_login(portal.url, "ivan", "ivan-pw", session)
    assert response.status_code == 200, response.text[:300]
    assert HUB_LOGIN_COOKIE in session.cookies
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).json()["name"] == "ivan"


def test_groups_roles_and_projects_follow_the_provider_at_every_login(sso):
    portal, provider = sso
    operator = _operator(portal, provider)
    provider.set_user(
        "hana", "hana-pw", ["aitestbed-users", "gpu-users", "acme-vision-users", "teachers"]
    )
    session, _ = provider_login(portal.url, "hana", "hana-pw")
    model = _hub_user(portal, operator, "hana").json()
    assert sorted(model["groups"]) == ["gpu", "verified"]
    assert model["admin"] is False
    me = _me(portal, session, "hana")
    assert [(p["slug"], p["role"]) for p in me["projects"]] == [("acme-vision", "member")]
    assert me["instructor"] is True

    # At the provider: out of gpu-users, acme-vision and teachers; lead of uni-nlp.
    provider.set_user("hana", "hana-pw", ["aitestbed-users", "uni-nlp-leads"], email_verified=False)
    session, _ = provider_login(portal.url, "hana", "hana-pw", requests.Session())
    model = _hub_user(portal, operator, "hana").json()
    assert model["groups"] == []
    me = _me(portal, session, "hana")
    assert [(p["slug"], p["role"]) for p in me["projects"]] == [("uni-nlp", "manager")]
    assert me["instructor"] is False

    # Made an operator at the provider: a hub admin who sees every project.
    provider.set_user("hana", "hana-pw", ["aitestbed-users", "aitestbed-operators"])
    session, _ = provider_login(portal.url, "hana", "hana-pw", requests.Session())
    assert _hub_user(portal, operator, "hana").json()["admin"] is True
    assert _me(portal, session, "hana")["operator"] is True


def test_removal_at_the_provider_revokes_access_at_next_login(sso):
    portal, provider = sso
    provider.set_user("erin", "erin-pw", ["aitestbed-users", "acme-vision-users"])
    session, response = provider_login(portal.url, "erin", "erin-pw")
    assert response.status_code == 200
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).json()["name"] == "erin"

    provider.set_user("erin", "erin-pw", ["acme-vision-users"])  # out of aitestbed-users
    fresh, response = provider_login(portal.url, "erin", "erin-pw", requests.Session())
    assert response.status_code == 403
    assert REFUSED in response.text
    assert fresh.get(f"{portal.url}/hub/api/user", timeout=30).status_code == 403


def test_user_outside_the_allowed_groups_is_refused_with_a_clear_page(sso):
    portal, provider = sso
    operator = _operator(portal, provider)
    provider.set_user("frank", "frank-pw", ["some-other-team", "acme-vision-users"])
    session, response = provider_login(portal.url, "frank", "frank-pw")
    assert response.status_code == 403
    assert REFUSED in response.text and "allowed group" in response.text
    assert _hub_user(portal, operator, "frank").status_code == 404
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).status_code == 403


def _callback_url(portal, provider, name, password):
    """Run the flow up to the provider's redirect back; return (session, callback URL)."""
    session = requests.Session()
    page = session.get(f"{portal.url}/hub/oauth_login?next=/hub/", timeout=60)
    action = FORM_ACTION.search(page.text).group(1)
    response = session.post(
        urljoin(page.url, action),
        data={"prompt": "login", "login": name, "password": password},
        allow_redirects=False,
        timeout=60,
    )
    while "/hub/oauth_callback" not in response.headers.get("location", ""):
        location = urljoin(response.url, response.headers["location"])
        response = session.get(location, allow_redirects=False, timeout=60)
    return session, response.headers["location"]


def test_tampered_state_or_code_is_rejected(sso):
    portal, provider = sso
    provider.set_user("gus", "gus-pw", ["aitestbed-users"])
    session, callback = _callback_url(portal, provider, "gus", "gus-pw")
    query = parse_qs(urlparse(callback).query)
    base = callback.split("?")[0]

    forged_state = dict(query, state=["eyJzdGF0ZV9pZCI6ICJmb3JnZWQifQ=="])  # {"state_id": "forged"}
    response = session.get(f"{base}?{urlencode(forged_state, doseq=True)}", timeout=60)
    assert response.status_code == 400
    assert "does not belong to the sign-in started in this browser" in response.text
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).status_code == 403

    # A genuine callback replayed without the browser's state cookie is refused too.
    stranger = requests.Session()
    response = stranger.get(callback, timeout=60)
    assert response.status_code == 400
    assert stranger.get(f"{portal.url}/hub/api/user", timeout=30).status_code == 403

    # The right state with a forged code: the provider refuses the code, nobody logs in.
    session, callback = _callback_url(portal, provider, "gus", "gus-pw")
    query = parse_qs(urlparse(callback).query)
    forged_code = dict(query, code=["forged-" + query["code"][0][7:]])
    response = session.get(f"{base}?{urlencode(forged_code, doseq=True)}", timeout=60)
    assert response.status_code == 400
    assert "The sign-in service did not accept this sign-in" in response.text
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).status_code == 403


def test_logout_ends_the_provider_session(sso):
    portal, provider = sso
    provider.set_user("lena", "lena-pw", ["aitestbed-users"])
    session, _ = provider_login(portal.url, "lena", "lena-pw")
    response = session.get(f"{portal.url}/hub/logout", allow_redirects=False, timeout=30)
    location = response.headers["location"]
    assert location.startswith(provider.issuer + "/session/end")
    assert "id_token_hint" in parse_qs(urlparse(location).query)
    confirm = session.get(location, timeout=30)
    action = FORM_ACTION.search(confirm.text).group(1)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', confirm.text))
    done = session.post(
        urljoin(confirm.url, action),
        data={**fields, "logout": "yes"},
        timeout=30,
    )
    assert urlparse(done.url).path == "/hub/login"
    # The next login asks the provider for credentials again.
    page = session.get(f"{portal.url}/hub/oauth_login?next=/hub/", timeout=60)
    assert "/interaction/" in page.url


def test_access_request_flow_end_to_end(sso):
    portal, provider = sso
    provider.set_user("nora", "nora-pw", ["aitestbed-users"])  # allowed, but no project
    session, response = provider_login(portal.url, "nora", "nora-pw")
    assert urlparse(response.url).path == "/services/portal/access"
    assert "no active project" in response.text

    # The hub refuses a start asked for directly, with the same explanation.
    start = session.post(
        f"{portal.url}/hub/api/users/nora/server",
        headers=_xsrf(session),
        timeout=60,
    )
    assert start.status_code == 403 and "no active project" in start.json()["message"]

    form_token = re.search(r'name="form_token" value="([0-9a-f]+)"', response.text).group(1)
    sent = session.post(
        f"{portal.portal_url}access",
        data={"form_token": form_token, "project": "acme-vision", "reason": "Vision model"},
        timeout=30,
    )
    assert sent.status_code == 200 and "pending" in sent.text
    forged = session.post(
        f"{portal.portal_url}access",
        data={"form_token": "0" * 64, "reason": "again"},
        timeout=30,
    )
    assert forged.status_code == 403

    operator = _operator(portal, provider)
    headers = {"Authorization": f"token {_token(portal, operator, 'olga')}"}
    page = operator.get(f"{portal.portal_url}requests", timeout=30)
    assert page.status_code == 200 and "nora" in page.text and "Vision model" in page.text
    pending = requests.get(
        f"{portal.portal_url}api/access-requests?status=pending", headers=headers, timeout=30
    ).json()
    (mine,) = [r for r in pending if r["user"] == "nora"]
    assert mine["project"] == "acme-vision"

    # nora cannot decide her own request.
    nora_headers = {"Authorization": f"token {_token(portal, session, 'nora')}"}
    refused = requests.post(
        f"{portal.portal_url}api/access-requests/{mine['id']}/approve",
        json={},
        headers=nora_headers,
        timeout=30,
    )
    assert refused.status_code == 403

    approved = requests.post(
        f"{portal.portal_url}api/access-requests/{mine['id']}/approve",
        json={"role": "member", "note": "welcome"},
        headers=headers,
        timeout=30,
    )
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["granted_project"]) == (
        "approved",
        "acme-vision",
    )

    # nora sees the outcome and can start a server.
    outcome = session.get(f"{portal.portal_url}access", timeout=30)
    assert "approved" in outcome.text and "welcome" in outcome.text
    seen = requests.get(
        f"{portal.portal_url}api/access-requests/{mine['id']}", headers=nora_headers, timeout=30
    ).json()
    assert seen["status"] == "approved"
    start = session.post(
        f"{portal.url}/hub/api/users/nora/server",
        headers=_xsrf(session),
        timeout=60,
    )
    assert start.status_code in (201, 202), start.text
    _wait_for_server(portal, session, "nora")
    _stop_server(portal, session, "nora")


def test_the_client_secret_never_reaches_the_logs(sso):
    portal, provider = sso
    provider.set_user("omar", "omar-pw", ["aitestbed-users"])
    provider_login(portal.url, "omar", "omar-pw")
    log = portal.log()
    assert "Single sign-on" in log or "oauth" in log.lower()  # the log is the hub's
    assert CLIENT_SECRET not in log
    assert CLIENT_SECRET not in json.dumps(
        requests.get(f"{portal.portal_url}api/openapi.json", timeout=30).json()
    )


def test_a_name_that_maps_to_a_system_account_is_refused_at_login(sso):
    """'munge' at the provider maps to the cluster account munge (template {name}): the
    login is refused with a sentence naming the account, and no hub user is made."""
    import html

    portal, provider = sso
    operator = _operator(portal, provider)
    provider.set_user("munge", "munge-pw", ["aitestbed-users", "acme-vision-users"])
    session, response = provider_login(portal.url, "munge", "munge-pw")
    assert response.status_code == 403
    assert (
        "The cluster account 'munge' is a system account that portal jobs may not use; ask "
        "the operators to map you to a personal account." in html.unescape(response.text)
    )
    assert _hub_user(portal, operator, "munge").status_code == 404
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).status_code == 403


def test_course_groups_come_with_every_login(sso):
    """With single sign-on the authenticator sets the hub groups at each login: the course
    groups the staff's role filters on come from the portal beside the provider's groups
    (the demo course dl-101: ingrid teaches it, sam studies in it)."""
    portal, provider = sso
    operator = _operator(portal, provider)
    provider.set_user("ingrid", "ingrid-pw", ["aitestbed-users", "gpu-users"])
    provider.set_user("sam", "sam-pw", ["aitestbed-users"])
    provider_login(portal.url, "ingrid", "ingrid-pw")
    provider_login(portal.url, "sam", "sam-pw")
    ingrid = _hub_user(portal, operator, "ingrid").json()
    # The provider's mapped groups (gpu, verified) stay beside the course groups.
    assert sorted(ingrid["groups"]) == ["course.dl-101", "gpu", "staff.dl-101", "verified"]
    assert sorted(_hub_user(portal, operator, "sam").json()["groups"]) == [
        "course.dl-101",
        "verified",
    ]
