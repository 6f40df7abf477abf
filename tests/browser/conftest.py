"""Shared set-up of the browser tests: headless Chromium and screenshots as artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.x A and AA rules (contrast, labels, names, landmarks); a finding of these impacts
# fails the test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
FAILING_IMPACTS = ("serious", "critical")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can see a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (the system's, never a downloaded one) per test module.

    Per module, not per session: the sync Playwright API runs an event loop in this thread
    while it is open, which would stop later asyncio tests from running.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (the browser tests drive the system Chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _screenshot(page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def save_screenshot(artifacts_dir):
    """``save_screenshot(page, name)`` writes ``test-artifacts/browser/<name>.png``."""
    return lambda page, name: _screenshot(page, artifacts_dir, name)


@pytest.fixture
def page(request, browser_context, artifacts_dir):
    """A fresh tab in the module's browser context; a failing test leaves a screenshot."""
    tab = browser_context.new_page()
    tab.set_default_timeout(90_000)
    tab.set_default_navigation_timeout(90_000)
    try:
        yield tab
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            try:
                _screenshot(tab, artifacts_dir, f"FAILED-{request.node.name}")
            except Exception as error:  # the page may be gone; the failure matters more
                print(f"no failure screenshot: {error}")
        tab.close()


def accessibility_findings(page, include: str | None = None) -> list[dict]:
    """axe-core's serious and critical findings on the page (or inside ``include``)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm install` (axe-core is a devDependency).")
    page.add_script_tag(path=str(AXE))
    context = f"{{include: [{include!r}]}}" if include else "document"
    findings = page.evaluate(
        f"""async () => {{
          const result = await axe.run({context}, {{runOnly: {AXE_TAGS!r}}});
          return result.violations.map(v => ({{
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
          }}));
        }}"""
    )
    return [f for f in findings if f["impact"] in FAILING_IMPACTS]


@pytest.fixture
def check_page(save_screenshot):
    """``check_page(page, name)``: a screenshot kept as an artifact, and no serious
    accessibility finding (axe-core, WCAG 2.1 A/AA)."""

    def check(page, name: str, include: str | None = None) -> None:
        page.wait_for_load_state()
        save_screenshot(page, name)
        findings = accessibility_findings(page, include)
        assert findings == [], f"{name}: {findings}"

    return check
