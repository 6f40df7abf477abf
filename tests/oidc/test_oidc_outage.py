"""The provider goes away and comes back (real OpenID Connect provider, real hub): signed-in
users keep their session for the grace with one warning in the log; a sign-in or a
callback during the outage shows that the sign-in service is unavailable; logout still
ends the hub session. Every OAuth failure page says what to do and links back."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urljoin, urlparse

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

SECRET = "outage-test-client-secret-5e0a"
GRACE = 10
UNAVAILABLE = "The sign-in service is unavailable right now, so you cannot sign in"
WAY_BACK = 'href="/hub/login">Back to the login page</a>'
OUTAGE_WARNING = "The sign-in service cannot be reached"


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sso-outage")
    hub_url = f"http://127.0.0.1:{free_port()}"
    secret_file = workdir / "client-secret"
    secret_file.write_text(SECRET)
    with running_provider(workdir / "provider", hub_url, SECRET) as provider:
        provider.set_user("paul", "paul-pw", ["aitestbed-users"])
        authentication = oidc_settings(
            provider,
            secret_file,
            refresh_age_seconds=1,
            provider_outage_grace_seconds=GRACE,
        )
        # On purpose: anyone the provider authenticates may log in (allow-all).
        authentication["oidc"]["mapping"]["allowed"] = []
        with running_portal(
            workdir / "portal", {}, bind_url=hub_url, sections={"authentication": authentication}
        ) as portal:
            yield portal, provider


@pytest.fixture
def provider_back(sso):
    """Whatever a test does to the provider, the next test finds it up."""
    yield
    _portal, provider = sso
    if provider.process is None:
        provider.start()


def test_allow_all_on_purpose_and_no_demo_left_on_the_login_page(sso):
    portal, _provider = sso
    log = portal.log()
    assert "No allow config found" not in log
    assert "anyone the provider authenticates may log in (oidc.mapping.allowed is empty)" in log
    page = requests.get(f"{portal.url}/hub/login", timeout=30)
    assert page.status_code == 200
    assert "Sign in with Test SSO" in page.text
    assert 'name="password"' not in page.text
    assert "demo" not in page.text.lower()


def _whoami(portal, session) -> int:
    return session.get(f"{portal.url}/hub/api/user", timeout=30).status_code


def test_provider_down_during_a_session_keeps_it_for_the_grace_with_one_warning(sso, provider_back):
    portal, provider = sso
    session, _ = provider_login(portal.url, "paul", "paul-pw")
    assert _whoami(portal, session) == 200
    mark = len(portal.log())
    provider.stop()
    down_at = time.monotonic()
    # Every request of the next seconds rechecks paul (refresh age 1 s): he stays in.
    while time.monotonic() - down_at < 4:
        assert _whoami(portal, session) == 200
        time.sleep(0.3)
    during = portal.log()[mark:]
    assert during.count(OUTAGE_WARNING) == 1, during[-3000:]
    assert "Failed to get current user" not in during
    assert "Traceback" not in during
    # Past the grace, paul must sign in again, and the sign-in says the service is down.
    wait_until(
        lambda: _whoami(portal, session) == 403, timeout=GRACE + 30, what="the end of the grace"
    )
    assert time.monotonic() - down_at >= GRACE - 1
    login = session.get(f"{portal.url}/hub/oauth_login?next=/hub/", timeout=30)
    assert login.status_code == 503
    assert UNAVAILABLE in login.text
    assert WAY_BACK in login.text
    # The provider is back (with no memory of old sessions): signing in works again.
    provider.start()
    session, _ = provider_login(portal.url, "paul", "paul-pw")
    assert _whoami(portal, session) == 200
    assert "The sign-in service answers again" in portal.log()[mark:]


def _to_callback(portal, name, password) -> tuple[requests.Session, str]:
    """Sign in at the provider, stopping before the browser returns to the hub's callback."""
    session = requests.Session()
    page = session.get(f"{portal.url}/hub/oauth_login?next=/hub/", timeout=60)
    action = FORM_ACTION.search(page.text)
    assert action, page.text[:300]
    response = session.post(
        urljoin(page.url, action.group(1)),
        data={"prompt": "login", "login": name, "password": password},
        allow_redirects=False,
        timeout=60,
    )
    for _hop in range(10):
        location = urljoin(response.url, response.headers["location"])
        if location.startswith(f"{portal.url}/hub/oauth_callback"):
            return session, location
        response = session.get(location, allow_redirects=False, timeout=60)
    raise AssertionError("the provider never sent the browser back to the hub")


def test_provider_down_during_a_login_shows_the_unavailable_page(sso, provider_back):
    portal, provider = sso
    session, callback = _to_callback(portal, "paul", "paul-pw")
    provider.stop()
    answer = session.get(callback, timeout=60)
    assert answer.status_code == 503
    assert UNAVAILABLE in answer.text
    assert WAY_BACK in answer.text
    assert "500 : Internal Server Error" not in answer.text
    provider.start()
    session, _ = provider_login(portal.url, "paul", "paul-pw")
    assert _whoami(portal, session) == 200


def test_logout_while_the_provider_is_down_ends_the_hub_session(sso, provider_back):
    portal, provider = sso
    session, _ = provider_login(portal.url, "paul", "paul-pw")
    assert _whoami(portal, session) == 200
    provider.stop()
    page = session.get(f"{portal.url}/hub/logout", timeout=60)
    assert (page.status_code, urlparse(page.url).path) == (200, "/hub/login")
    assert _whoami(portal, session) == 403


def _state(state_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"state_id": state_id}).encode()).decode()


def _started_login(portal) -> tuple[requests.Session, str]:
    """A sign-in started at the hub (state cookie set); the state the provider would echo."""
    session = requests.Session()
    start = session.get(f"{portal.url}/hub/oauth_login?next=/hub/", allow_redirects=False)
    assert start.status_code == 302
    return session, parse_qs(urlparse(start.headers["location"]).query)["state"][0]


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("no state cookie", 400, "This sign-in expired or was opened in another browser"),
        ("state mismatch", 400, "does not belong to the sign-in started in this browser"),
        ("no code", 400, "sent the browser back without a sign-in code"),
        ("provider error", 400, "The sign-in service did not sign you in (access_denied)"),
        ("token exchange refused", 400, "The sign-in service did not accept this sign-in"),
    ],
)
def test_every_oauth_failure_says_what_to_do_and_links_back(sso, case, status, message):
    portal, _provider = sso
    callback = f"{portal.url}/hub/oauth_callback"
    if case == "no state cookie":
        answer = requests.get(f"{callback}?code=abc&state={_state('x')}", timeout=30)
    else:
        session, state = _started_login(portal)
        query = {
            "state mismatch": f"code=abc&state={_state('someone-elses')}",
            "no code": f"state={state}",
            "provider error": f"error=access_denied&state={state}",
            "token exchange refused": f"code=not-a-real-code&state={state}",
        }[case]
        answer = session.get(f"{callback}?{query}", timeout=30)
    assert answer.status_code == status, answer.text[:500]
    assert message in answer.text
    assert "Start the sign-in again from the login page." in answer.text
    assert WAY_BACK in answer.text
    assert "OAuth state" not in answer.text
