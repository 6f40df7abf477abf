"""Tokens in auth_state are refreshed with the provider, and a user the provider no longer
allows loses the session at the next check (real provider with short-lived access tokens)."""

from __future__ import annotations

import pytest
import requests

from tests.harness import free_port, running_portal, wait_until
from tests.oidc.provider import node_available, oidc_settings, provider_login, running_provider

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not node_available(), reason="node + npm ci (oidc-provider) needed"),
]

SECRET = "refresh-test-client-secret-2b8a"
ACCESS_TOKEN_TTL = 3


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sso-refresh")
    hub_url = f"http://127.0.0.1:{free_port()}"
    secret_file = workdir / "client-secret"
    secret_file.write_text(SECRET)
    with running_provider(
        workdir / "provider", hub_url, SECRET, access_token_ttl=ACCESS_TOKEN_TTL
    ) as provider:
        provider.set_user("olga", "olga-pw", ["aitestbed-users", "aitestbed-operators"])
        authentication = oidc_settings(provider, secret_file, refresh_age_seconds=1)
        with running_portal(
            workdir / "portal", {}, bind_url=hub_url, sections={"authentication": authentication}
        ) as portal:
            yield portal, provider


def _access_token(portal, name) -> str:
    """Read the user's auth_state as the hub's admin API shows it to an operator."""
    operator, _ = provider_login(portal.url, "olga", "olga-pw")
    model = operator.get(f"{portal.url}/hub/api/users/{name}", timeout=30).json()
    return model["auth_state"]["access_token"]


def test_expired_access_token_is_refreshed_and_removal_ends_the_session(sso):
    portal, provider = sso
    provider.set_user("rita", "rita-pw", ["aitestbed-users", "acme-vision-users"])
    session, _ = provider_login(portal.url, "rita", "rita-pw")
    first = _access_token(portal, "rita")

    def expired() -> bool:
        answer = requests.get(
            f"{provider.issuer}/me", headers={"Authorization": f"Bearer {first}"}, timeout=10
        )
        return answer.status_code == 401

    wait_until(expired, timeout=30, interval=0.5, what="the first access token to expire")
    # rita's next request makes the hub recheck her with the provider: the access token is
    # refused there, so the hub uses the refresh token and keeps her logged in.
    assert session.get(f"{portal.url}/hub/api/user", timeout=30).json()["name"] == "rita"
    second = _access_token(portal, "rita")
    assert second != first
    assert (
        requests.get(
            f"{provider.issuer}/me", headers={"Authorization": f"Bearer {second}"}, timeout=10
        ).status_code
        == 200
    )

    # Out of the allowed group at the provider: the next recheck ends her session.
    provider.set_user("rita", "rita-pw", ["acme-vision-users"])

    def logged_out() -> bool:
        page = session.get(f"{portal.url}/hub/home", allow_redirects=False, timeout=30)
        return page.status_code == 302 and "/hub/login" in page.headers["location"]

    wait_until(logged_out, timeout=30, interval=0.5, what="rita's session to end")
