"""The dataset browser once in a real browser: headless Chromium, the real hub, JupyterLab.

The portal writes its demo datasets at start-up. alice logs in, her session starts, a
notebook shows ``aitestbed.datasets.browser()``; she searches "digits", picks it, accepts
its terms (with the confirmation), and sees the first rows of the table, thumbnails of the
images, and the code to load it, which the Copy button puts on the clipboard.
"""

from __future__ import annotations

import nbformat
import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.harness import running_portal
from tests.jobs_support import python_notebook

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _notebook(path) -> None:
    nbformat.write(python_notebook("import aitestbed\naitestbed.datasets.browser()"), path)


def test_dataset_browser_in_jupyterlab(tmp_path, artifacts_dir):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (the browser tests drive the system Chromium)")
    from playwright.sync_api import expect, sync_playwright

    with running_portal(tmp_path / "portal", {"alice": "alice-pw"}) as portal:
        home = tmp_path / "portal" / "state" / "homes" / "alice"
        home.mkdir(parents=True, exist_ok=True)
        _notebook(home / "datasets.ipynb")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1200})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal.url)
            page = context.new_page()
            try:
                page.goto(f"{portal.url}/hub/login", timeout=60_000)
                page.fill("#username_input", "alice")
                page.fill("#password_input", "alice-pw")
                page.click("#login_submit")
                page.wait_for_url("**/hub/spawn**", timeout=60_000)
                page.locator("#spawn_form [type=submit]").click()
                page.wait_for_url("**/user/alice/lab**", timeout=120_000)
                page.goto(f"{portal.url}/user/alice/lab/tree/datasets.ipynb?reset", timeout=60_000)
                expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=60_000)
                # run only once the kernel is connected and idle, else the run is dropped
                expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(
                    timeout=90_000
                )
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_text("Run All Cells", exact=True).click()
                widget = page.locator(".aitestbed-dataset-browser")
                results = widget.locator(".widget-select select").first
                expect(results).to_contain_text("Iris flowers (iris)", timeout=90_000)

                widget.get_by_placeholder("Search datasets").fill("digits")
                widget.get_by_placeholder("Search datasets").press("Enter")
                expect(results.locator("option")).to_have_count(1, timeout=30_000)
                results.select_option(label="Handwritten digits (digits) - terms to accept")
                expect(widget).to_contain_text("Do not try to identify the writers")
                expect(widget).to_contain_text("CC-BY-4.0")

                widget.get_by_role("button", name="Accept terms").click()
                widget.get_by_role("button", name="Yes, I accept").click()
                expect(widget).to_contain_text("You accepted version 1", timeout=30_000)
                expect(widget.get_by_role("button", name="Accept terms")).to_be_hidden()
                table = widget.locator("table.aitestbed-preview")
                expect(table).to_contain_text("pixel_0_0", timeout=30_000)
                expect(table).to_contain_text("first 20 of 1797 rows")

                files = widget.locator(".widget-select select").nth(1)
                files.select_option(label="images/")
                expect(files).to_contain_text("3/", timeout=30_000)
                files.select_option(label="3/")
                thumbnails = widget.locator(".aitestbed-thumbnail")
                expect(thumbnails).to_have_count(8, timeout=30_000)
                # the PNG decoded and was drawn: a real image has a natural width
                expect(thumbnails.first).to_have_js_property("naturalWidth", 32)

                code = widget.locator(".aitestbed-dataset-code textarea")
                expect(code).to_have_value(
                    'import aitestbed\n\nfolder = aitestbed.datasets.path("digits") / '
                    '"images/3"\nsorted(p.name for p in folder.iterdir())'
                )
                widget.get_by_role("button", name="Copy").click()
                expect(widget.get_by_role("button", name="Copied")).to_be_visible()
                assert page.evaluate("navigator.clipboard.readText()") == code.input_value()
                widget.screenshot(path=str(artifacts_dir / "dataset-browser.png"))
            except Exception:
                page.screenshot(path=str(artifacts_dir / "FAILED-dataset-browser.png"))
                raise
            finally:
                browser.close()
