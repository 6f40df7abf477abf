"""The spawn page in a real browser says before a start that a project's sessions run in
safe mode (the demo's pseudonymized dataset) and what the embedded default cannot enforce."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.chromium import CHROMIUM
from tests.harness import running_portal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    with running_portal(tmp_path_factory.mktemp("safe-spawn"), {"alice": "alice-pw"}) as running:
        yield running


@pytest.fixture
def browser_context(browser, portal):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    try:
        yield context
    finally:
        context.close()


def test_the_spawn_page_says_safe_mode_and_its_limits_here(portal, page, save_screenshot):
    session = portal.login("alice", "alice-pw")
    token = session.post(
        f"{portal.url}/hub/api/users/alice/tokens", json={"expires_in": 600}, timeout=30
    ).json()["token"]
    accepted = requests.post(
        f"{portal.portal_url}api/datasets/patients-demo/terms",
        json={"version": "1"},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert accepted.status_code == 200, accepted.text

    page.goto(f"{portal.url}/hub/login")
    page.locator("input[name=username]").fill("alice")
    page.locator("input[name=password]").fill("alice-pw")
    page.locator("form [type=submit]").click()
    page.wait_for_url(re.compile(r".*/hub/spawn"), timeout=WAIT_MS)
    block = page.locator(".aitb-project[data-project='acme-vision']")
    expect(block).to_be_visible()
    expect(block.locator(".aitb-datasets")).to_contain_text(
        "Datasets in this session (read-only): iris, patients-demo."
    )
    note = block.locator(".aitb-safe-mode")
    expect(note).to_contain_text(
        "Safe mode. Safe mode: this session mounts pseudonymized data (patients-demo)."
    )
    expect(note).to_contain_text(
        "On this single-machine installation JupyterLab refuses downloads and exports, but "
        "the network is not closed"
    )
    save_screenshot(page, "spawn-page-safe-mode")
