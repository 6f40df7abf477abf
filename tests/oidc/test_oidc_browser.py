"""Single sign-on in a real browser: headless Chromium (Playwright) logs in at the real
OpenID Connect provider and ends in JupyterLab; a refused user sees the clear page."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.harness import free_port, running_portal
from tests.oidc.provider import node_available, oidc_settings, running_provider

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(not node_available(), reason="node + npm ci (oidc-provider) needed"),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Chromium missing: run scripts/setup.sh --test"
    ),
]

SECRET = "browser-test-client-secret-7c1e"
REVOCATION_GRACE = 15
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sso-browser")
    hub_url = f"http://127.0.0.1:{free_port()}"
    secret_file = workdir / "client-secret"
    secret_file.write_text(SECRET)
    with running_provider(workdir / "provider", hub_url, SECRET) as provider:
        provider.set_user("dana", "dana-pw", ["aitestbed-users", "acme-vision-users"])
        provider.set_user("frank", "frank-pw", ["acme-vision-users"])
        provider.set_user("nora", "nora-pw", ["aitestbed-users"])  # no project yet
        provider.set_user("olga", "olga-pw", ["aitestbed-users", "aitestbed-operators"])
        provider.set_user("rosa", "rosa-pw", ["aitestbed-users", "acme-vision-users"])
        # Short enough for a test: groups rechecked every second, a 15 s revocation grace.
        authentication = oidc_settings(provider, secret_file, refresh_age_seconds=1)
        with running_portal(
            workdir / "portal",
            {},
            bind_url=hub_url,
            sections={"authentication": authentication},
            revocation_grace_seconds=REVOCATION_GRACE,
        ) as portal:
            yield portal, provider


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    return browser.new_context().new_page()


def _sign_in(page, portal, name, password):
    page.goto(f"{portal.url}/hub/login", timeout=60_000)
    page.get_by_text("Sign in with Test SSO").click()
    page.locator("input[name=login]").fill(name)
    page.locator("input[name=password]").fill(password)
    page.locator("button[type=submit]").click()


def test_browser_login_ends_in_jupyterlab(sso, page):
    portal, _provider = sso
    _sign_in(page, portal, "dana", "dana-pw")
    # The spawn page offers dana's project with its defaults selected: press Start.
    page.wait_for_url("**/hub/spawn", timeout=120_000)
    page.locator("#spawn_form [type=submit]").click()
    page.wait_for_url("**/user/dana/lab**", timeout=120_000)
    page.locator(".jp-Launcher").first.wait_for(timeout=120_000)
    assert "JupyterLab" in page.title()
    page.request.delete(
        f"{portal.url}/hub/api/users/dana/server",
        headers={
            "X-XSRFToken": next(
                c["value"]
                for c in page.context.cookies()
                if c["name"] == "_xsrf" and c["path"] == "/hub/"
            )
        },
    )


def test_browser_user_outside_allowed_groups_sees_clear_page(sso, page):
    portal, _provider = sso
    _sign_in(page, portal, "frank", "frank-pw")
    heading = page.get_by_role("heading", name="403")
    heading.wait_for(timeout=60_000)
    assert "not allowed to use this portal" in heading.inner_text()
    assert "allowed group" in page.locator("p", has_text="not allowed").first.inner_text()


def test_browser_access_request_and_operator_approval(sso, browser):
    portal, _provider = sso
    nora = browser.new_context().new_page()
    _sign_in(nora, portal, "nora", "nora-pw")
    nora.wait_for_url("**/services/portal/access", timeout=60_000)
    assert "no active project" in nora.locator("#status").inner_text()
    nora.locator("input[name=project]").fill("acme-vision")
    nora.locator("textarea[name=reason]").fill("Training a defect detector")
    nora.get_by_role("button", name="Request access").click()
    nora.locator("li.access-request[data-status=pending]").wait_for(timeout=30_000)

    olga = browser.new_context().new_page()
    _sign_in(olga, portal, "olga", "olga-pw")
    olga.wait_for_load_state()
    olga.goto(f"{portal.portal_url}requests", timeout=60_000)
    request = olga.locator("li.pending-request", has_text="nora")
    assert "Training a defect detector" in request.inner_text()
    request.locator("input[name=note]").first.fill("welcome aboard")
    request.get_by_role("button", name="Approve").click()
    olga.get_by_text("No pending requests.").wait_for(timeout=30_000)

    nora.reload()
    outcome = nora.locator("li.access-request[data-status=approved]")
    assert "member of acme-vision" in outcome.inner_text()
    assert "welcome aboard" in outcome.inner_text()
    assert "active project" in nora.locator("#status").inner_text()


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_browser_revocation_warning_then_stop(sso, page):
    portal, provider = sso
    _sign_in(page, portal, "rosa", "rosa-pw")
    page.wait_for_url("**/hub/spawn", timeout=120_000)
    page.locator("#spawn_form [type=submit]").click()
    page.wait_for_url("**/user/rosa/lab**", timeout=120_000)

    # Out of the project's group at the provider: rosa's next page rechecks her there.
    provider.set_user("rosa", "rosa-pw", ["aitestbed-users"])
    time.sleep(1.5)
    page.goto(f"{portal.url}/hub/home", timeout=60_000)
    warning = page.locator(".revocation-notice[data-project=acme-vision]")
    for _attempt in range(30):  # the hub's page shows what the portal decided, within seconds
        if warning.count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    assert "You are no longer a member of project acme-vision" in warning.inner_text()
    assert "save your work now" in warning.inner_text()
    _screenshot(page, "sso-revocation-warning-hub-home")
    page.goto(f"{portal.portal_url}access", timeout=60_000)
    portal_warning = page.locator(".revocation-notice[data-stopped=false]")
    assert "It stops at" in portal_warning.inner_text()
    _screenshot(page, "sso-revocation-warning-portal")

    # After the grace the server is gone and the page says why.
    stopped = page.locator(".revocation-notice[data-stopped=true]")
    for _attempt in range(REVOCATION_GRACE + 60):
        if stopped.count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    assert "It was stopped at" in stopped.inner_text()
    assert "no active project" in page.locator("#status").inner_text()
    _screenshot(page, "sso-revocation-stopped-portal")


def test_browser_sign_in_while_the_provider_is_down_shows_the_outage_page(sso, page):
    portal, provider = sso
    provider.stop()
    try:
        page.goto(f"{portal.url}/hub/login", timeout=60_000)
        page.get_by_text("Sign in with Test SSO").click()
        message = page.locator("p", has_text="The sign-in service is unavailable right now")
        message.wait_for(timeout=60_000)
        assert "try again in a few minutes" in message.inner_text()
        back = page.get_by_role("link", name="Back to the login page")
        assert back.get_attribute("href") == "/hub/login"
        _screenshot(page, "sso-provider-outage-page")
        back.click()
        page.get_by_text("Sign in with Test SSO").wait_for(timeout=30_000)
    finally:
        provider.start()
