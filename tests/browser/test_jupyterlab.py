"""A real browser against the real portal: log in, land in JupyterLab, see the quota panel.

Headless system Chromium drives the hub's login form; the hub spawns alice's JupyterLab
through the portal's local spawner; a notebook calling ``aitestbed.quota_panel()`` runs in
a real kernel and its ipywidgets render in the page. Screenshots land in
``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.chromium import CHROMIUM
from tests.harness import running_portal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (these tests drive it)"
    ),
]

NAME, PASSWORD = "alice", "alice-pw"
NOTEBOOK = "quota.ipynb"
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    with running_portal(tmp_path_factory.mktemp("browser-portal"), {NAME: PASSWORD}) as running:
        yield running


@pytest.fixture(scope="module")
def browser_context(browser, portal):
    """One cookie jar for the module: the later test reuses the earlier login."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        yield context
    finally:
        context.close()


def _logged_in(page: Page) -> bool:
    return any(c["name"] == "jupyterhub-hub-login" for c in page.context.cookies())


def _log_in_to_lab(page: Page, portal) -> None:
    """Log in through the real form and follow the hub until JupyterLab is up."""
    page.goto(f"{portal.url}/hub/login")
    page.locator("input[name=username]").fill(NAME)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form [type=submit]").click()
    # The spawn page offers alice's one project with its defaults selected: press Start.
    page.wait_for_url(re.compile(r".*/hub/spawn"), timeout=WAIT_MS)
    page.locator("#spawn_form [type=submit]").click()
    # The hub spawns the server (spawn-pending page) and then redirects into the session.
    page.wait_for_url(re.compile(rf"^{re.escape(portal.url)}/user/{NAME}/lab"), timeout=WAIT_MS)


def test_login_through_the_form_reaches_the_jupyterlab_launcher(portal, page, save_screenshot):
    _log_in_to_lab(page, portal)
    # A clean workspace, whatever an earlier visit left behind.
    page.goto(f"{portal.url}/user/{NAME}/lab?reset")
    launcher = page.locator(".jp-Launcher")
    expect(launcher).to_be_visible(timeout=WAIT_MS)
    expect(launcher).to_contain_text("Notebook", timeout=WAIT_MS)
    save_screenshot(page, "jupyterlab-launcher")


def _put_notebook(portal) -> None:
    """Create the notebook through the session's contents API with a fresh API token."""
    session = portal.login(NAME, PASSWORD)
    created = session.post(
        f"{portal.url}/hub/api/users/{NAME}/tokens",
        json={"note": "browser test", "expires_in": 600},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"token {created.json()['token']}"}
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "quota-panel",
                "metadata": {},
                "outputs": [],
                "source": "import aitestbed\naitestbed.quota_panel()",
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    response = requests.put(
        f"{portal.url}/user/{NAME}/api/contents/{NOTEBOOK}",
        data=json.dumps({"type": "notebook", "format": "json", "content": notebook}),
        headers=headers,
        timeout=60,
    )
    assert response.status_code in (200, 201), response.text


def _run_first_cell(page: Page, cell) -> None:
    """Run the cell with Shift+Enter, as a user does.

    JupyterLab silently skips a cell run while its kernel connection is still being set up
    (the prompt stays ``[ ]``); a user would press again, and so does this, a few times.
    """
    prompt = cell.locator(".jp-InputPrompt")
    for attempt in range(1, 4):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            # "[*]:" while it runs, "[1]:" once it ran.
            expect(prompt).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=15_000)
            return
        except AssertionError:
            print(f"cell run {attempt} was not executed; kernel status: {_status_text(page)}")
    raise AssertionError("JupyterLab never executed the cell")


def _status_text(page: Page) -> str:
    try:
        return page.get_by_title(f"Change kernel for {NOTEBOOK}").inner_text(timeout=5_000)
    except Exception as error:  # only for the message
        return f"unknown ({error.__class__.__name__})"


def test_quota_panel_renders_in_a_notebook(portal, page, save_screenshot):
    if not _logged_in(page):  # this test was run on its own
        _log_in_to_lab(page, portal)
    _put_notebook(portal)

    # JupyterLab asks for a kernel when it opens a notebook before it has loaded the kernel
    # specs (a race on a slow machine) or when a start failed: accept the preferred one.
    page.add_locator_handler(
        page.locator(".jp-Dialog").filter(has_text="Select Kernel"),
        lambda dialog: dialog.get_by_role("button", name="Select", exact=True).click(),
    )
    page.goto(f"{portal.url}/user/{NAME}/lab/tree/{NOTEBOOK}?reset")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    cell = notebook.locator(".jp-CodeCell").first
    expect(cell).to_contain_text("aitestbed.quota_panel()", timeout=WAIT_MS)
    # The kernel named in the notebook's metadata starts by itself; wait until the page is
    # connected to it (the status bar reads "<kernel> | Idle").
    kernel_status = page.get_by_title(f"Change kernel for {NOTEBOOK}")
    expect(kernel_status).to_have_text(re.compile(r"\| Idle$"), timeout=WAIT_MS)
    _run_first_cell(page, cell)

    panel = cell.locator(".jp-OutputArea-output .aitestbed-quota-panel")
    expect(panel).to_be_visible(timeout=WAIT_MS)
    expect(panel).to_contain_text("Projects of alice", timeout=WAIT_MS)
    expect(panel).to_contain_text("ACME Vision", timeout=WAIT_MS)
    expect(panel).to_contain_text("acme-vision")
    expect(panel).to_contain_text("GPU-hours used (")  # the used share, labelled
    expect(panel).to_contain_text("Allocation period (")
    expect(panel.locator(".widget-button")).to_contain_text("Refresh")
    save_screenshot(page, "quota-panel")
