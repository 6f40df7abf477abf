"""The spawn page in a real browser: pick a project, an image and a flavor, get JupyterLab."""

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
    with running_portal(tmp_path_factory.mktemp("spawn-page"), {"bob": "bob-pw"}) as running:
        yield running


@pytest.fixture
def browser_context(browser, portal):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    try:
        yield context
    finally:
        context.close()


def test_pick_project_image_and_flavor_then_jupyterlab(portal, page, save_screenshot):
    page.goto(f"{portal.url}/hub/login")
    page.locator("input[name=username]").fill("bob")
    page.locator("input[name=password]").fill("bob-pw")
    page.locator("form [type=submit]").click()
    page.wait_for_url(re.compile(r".*/hub/spawn"), timeout=WAIT_MS)

    project = page.locator("#aitb-project")
    expect(project).to_be_visible()
    project.select_option("uni-nlp")
    block = page.locator(".aitb-project[data-project='uni-nlp']")
    expect(block).to_be_visible()
    # uni-nlp allows only the CPU image; the A100 flavor is not offered to it at all.
    expect(block.locator("input[name='image-uni-nlp']")).to_have_count(1)
    expect(block.locator("input[value='a100x1']")).to_have_count(0)
    expect(page.locator(".aitb-project[data-project='acme-vision']")).to_be_hidden()
    # The session's datasets: the public iris and wine, granted to uni-nlp; not digits.
    datasets = block.locator(".aitb-datasets")
    expect(datasets).to_contain_text("Datasets in this session (read-only): iris, wine.")
    expect(datasets).not_to_contain_text("digits")
    block.locator("input[name='flavor-uni-nlp'][value='cpu-small']").check()
    block.locator("input[name='image-uni-nlp'][value='python-cpu']").check()
    save_screenshot(page, "spawn-page")
    page.locator("#spawn_form [type=submit]").click()

    page.wait_for_url(re.compile(rf"^{re.escape(portal.url)}/user/bob/lab"), timeout=WAIT_MS)
    page.goto(f"{portal.url}/user/bob/lab?reset")
    expect(page.locator(".jp-Launcher")).to_be_visible(timeout=WAIT_MS)
    save_screenshot(page, "spawn-page-jupyterlab")

    # The session was charged to the project chosen in the browser.
    session = portal.login("bob", "bob-pw")
    token = session.post(
        f"{portal.url}/hub/api/users/bob/tokens", json={"expires_in": 600}, timeout=30
    ).json()["token"]
    usage = requests.get(
        f"{portal.portal_url}api/usage", headers={"Authorization": f"token {token}"}, timeout=30
    ).json()
    running = {u["slug"]: u["running_sessions"] for u in usage}
    assert running == {"acme-vision": 0, "uni-nlp": 1}
