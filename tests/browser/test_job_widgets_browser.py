"""The job widgets once in a real browser: headless Chromium, the real hub, JupyterLab.

alice logs in through the login form, her session starts, a notebook submits a job with
``aitestbed.jobs`` and shows ``aitestbed.job_monitor()``; the rendered widget must list the
finished job.
"""

from __future__ import annotations

import nbformat
import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.harness import REPO, running_portal
from tests.jobs_support import python_notebook

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _notebook(path) -> None:
    notebook = python_notebook(
        "import aitestbed\n"
        "job = aitestbed.jobs.submit(['echo', 'hello'], name='browser-job')\n"
        "job.wait(timeout=90, interval=0.5)",
        "aitestbed.job_monitor(interval=None)",
    )
    nbformat.write(notebook, path)


def test_job_monitor_renders_in_jupyterlab(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with running_portal(tmp_path / "portal", {"alice": "alice-pw"}) as portal:
        home = tmp_path / "portal" / "state" / "homes" / "alice"
        home.mkdir(parents=True, exist_ok=True)
        _notebook(home / "jobs.ipynb")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.goto(f"{portal.url}/hub/login", timeout=60_000)
                page.fill("#username_input", "alice")
                page.fill("#password_input", "alice-pw")
                page.click("#login_submit")
                # the spawn page offers alice's project with its defaults: press Start
                page.wait_for_url("**/hub/spawn**", timeout=60_000)
                page.locator("#spawn_form [type=submit]").click()
                page.wait_for_url("**/user/alice/lab**", timeout=120_000)
                page.goto(f"{portal.url}/user/alice/lab/tree/jobs.ipynb?reset", timeout=60_000)
                first_cell = page.locator(".jp-Notebook .jp-Cell").first
                expect(first_cell).to_be_visible(timeout=60_000)
                # run only once the kernel is connected and idle, else the run is dropped
                expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(
                    timeout=90_000
                )
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_text("Run All Cells", exact=True).click()
                table = page.locator(".aitestbed-job-monitor table.aitestbed-jobs")
                expect(table).to_contain_text("browser-job", timeout=90_000)
                expect(table).to_contain_text("COMPLETED", timeout=30_000)
                expect(page.locator(".aitestbed-job-monitor textarea")).to_have_value(
                    "hello\n", timeout=30_000
                )
                page.screenshot(path=str(artifacts / "job-monitor.png"))
            except Exception:
                page.screenshot(path=str(artifacts / "job-monitor-failure.png"))
                raise
            finally:
                browser.close()
