"""One journey per role through the portal's navigation only (no typed URLs after login),
in headless Chromium against a real hub, proxy and portal. Every page passes an automated
accessibility check (axe-core) and leaves a screenshot in test-artifacts/browser/."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from pathlib import Path

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
USERS = {"olivia": "olivia-pw", "dora": "dora-pw", "erin": "erin-pw", "alice": "alice-pw"}


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    with running_portal(tmp_path_factory.mktemp("journeys"), USERS) as running:
        yield running


@pytest.fixture
def browser_context(browser, portal):
    context = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
    try:
        yield context
    finally:
        context.close()


def log_in(page, portal, name: str) -> None:
    page.goto(f"{portal.url}/hub/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(USERS[name])
    page.locator("form [type=submit]").click()


def nav(page, label: str) -> None:
    """Follow an entry of the top bar (the portal's pages and the hub's share it)."""
    page.locator("nav.navbar").get_by_role("link", name=re.compile(rf"^{label}")).click()
    page.wait_for_load_state()


def api_token(portal, name: str) -> str:
    session = portal.login(name, USERS[name])
    return session.post(
        f"{portal.url}/hub/api/users/{name}/tokens", json={"expires_in": 600}, timeout=30
    ).json()["token"]


def test_user_without_a_project_asks_for_access_and_starts_once_approved(
    portal, page, check_page, save_screenshot
):
    log_in(page, portal, "dora")
    page.wait_for_url(re.compile(r".*/services/portal/access$"), timeout=WAIT_MS)
    expect(page.locator("#status")).to_contain_text("no active project")
    check_page(page, "user-access-page")

    # The hub's spawn page, reached through the top bar, says where to ask and offers no Start.
    nav(page, "Sessions")
    expect(page.locator("#aitb-no-project")).to_contain_text("nothing to start")
    expect(page.locator("#spawn_form [type=submit]")).to_be_hidden()
    check_page(page, "user-spawn-page-without-project", include="#spawn_form")
    ask = page.get_by_role("link", name="Ask for access")
    assert ask.get_attribute("href") == "/services/portal/access"
    # The hub's page has the portal's top bar too.
    nav(page, "Usage")
    expect(page.locator("#no-projects")).to_contain_text("You belong to no project yet")
    check_page(page, "user-usage-without-project")
    page.get_by_role("link", name="request access").click()
    page.wait_for_url(re.compile(r".*/services/portal/access$"), timeout=WAIT_MS)

    page.get_by_label("Project short name (if you know it)").fill("acme-vision")
    page.get_by_label("What for").fill("Fine-tuning a detector <b>for</b> shelves 🛒")
    page.get_by_role("button", name="Request access").click()
    pending = page.locator("li.access-request[data-status=pending]")
    expect(pending).to_contain_text("You wrote: Fine-tuning a detector <b>for</b> shelves 🛒")
    check_page(page, "user-access-requested")

    # An operator approves (through the API here; the operator's journey uses the page).
    headers = {"Authorization": f"token {api_token(portal, 'olivia')}"}
    pending_requests = requests.get(
        f"{portal.portal_url}api/access-requests?status=pending", headers=headers, timeout=30
    ).json()
    (mine,) = [r for r in pending_requests if r["user"] == "dora"]
    approved = requests.post(
        f"{portal.portal_url}api/access-requests/{mine['id']}/approve",
        json={"project": "uni-nlp", "note": "welcome"},
        headers=headers,
        timeout=30,
    )
    assert approved.status_code == 200, approved.text

    page.reload()
    expect(page.locator("li.access-request[data-status=approved]")).to_contain_text(
        "approved: dora is now member of uni-nlp"
    )
    expect(page.locator("#status")).to_contain_text("You belong to an active project.")
    nav(page, "Usage")
    expect(page.locator("#usage-table")).to_contain_text("uni-nlp")
    check_page(page, "user-usage")
    nav(page, "Datasets")
    # Where its sessions find it on this one-machine site (a pod: /datasets/wine).
    expect(page.locator("#dataset-wine")).to_contain_text("~/datasets/wine")
    check_page(page, "user-datasets")
    nav(page, "Jobs")
    expect(page.locator("#no-jobs")).to_be_visible()
    check_page(page, "user-jobs")

    # First start, from the Sessions entry of the top bar.
    nav(page, "Sessions")
    expect(page.locator("#aitb-project")).to_have_value("uni-nlp")
    check_page(page, "user-spawn-page", include="#spawn_form")
    page.locator("input[name='flavor-uni-nlp'][value='cpu-small']").check()
    page.locator("#spawn_form [type=submit]").click()
    page.wait_for_url(re.compile(rf"^{re.escape(portal.url)}/user/dora/"), timeout=WAIT_MS)
    expect(page.locator("#jp-main-dock-panel, .jp-LabShell").first).to_be_visible(timeout=WAIT_MS)
    save_screenshot(page, "user-first-session")


def test_operator_runs_the_console_through_the_navigation(portal, page, check_page):
    # A pending request to decide (erin asks through the API, before the operator looks).
    erin = {"Authorization": f"token {api_token(portal, 'erin')}"}
    asked = requests.post(
        f"{portal.portal_url}api/access-requests",
        json={"reason": "Speech models for <script>alert(1)</script> ‮RTL‬"},
        headers=erin,
        timeout=30,
    )
    assert asked.status_code == 201, asked.text

    log_in(page, portal, "olivia")
    page.wait_for_url(re.compile(r".*/services/portal/console$"), timeout=WAIT_MS)
    expect(page.locator("#console-pending")).to_contain_text("1 waiting for a decision.")
    expect(page.locator("#pending-count")).to_contain_text("1")
    check_page(page, "operator-console")

    # A project with an allocation.
    nav(page, "Projects")
    check_page(page, "operator-projects")
    form = page.locator("#new-project")
    until = (date.today() + timedelta(days=180)).isoformat()
    form.get_by_label("Short name").fill("speech-lab")
    form.get_by_label("Title").fill("Speech lab 🎙")
    form.get_by_label("GPU-hour budget").fill("300")
    form.get_by_label("GPUs at the same time").fill("2")
    form.get_by_label("Valid until").fill(until)
    form.get_by_label("Flavors members may start").fill("cpu-small")
    form.get_by_role("button", name="Create project").click()
    expect(page.locator("#notice")).to_have_text("The project was created.")
    expect(page.locator("#project-status")).to_have_text("active")
    check_page(page, "operator-project-created")

    # Approve erin into it and see the result.
    nav(page, "Requests")
    request = page.locator("li.pending-request", has_text="erin")
    expect(request).to_contain_text("Speech models for <script>alert(1)</script>")
    check_page(page, "operator-requests")
    request.get_by_label("Project").select_option("speech-lab")
    request.get_by_label("Note to the user").fill("welcome")
    request.get_by_role("button", name="Approve").click()
    expect(page.locator("#decision")).to_contain_text(
        "by erin: approved: erin is now member of speech-lab."
    )
    expect(page.locator("#pending-count")).to_have_count(0)
    check_page(page, "operator-request-decided")

    # Grant a dataset to the new project.
    nav(page, "Catalog")
    digits = page.locator("#catalog-digits")
    digits.get_by_label("Grant digits to project").select_option("speech-lab")
    digits.get_by_role("button", name="Grant").click()
    expect(page.locator("#notice")).to_have_text("Granted: digits to speech-lab.")
    expect(page.locator("#catalog-digits li.grant[data-project=speech-lab]")).to_be_visible()
    check_page(page, "operator-catalog")

    # Read the audit log: the grant is there.
    nav(page, "Audit")
    page.get_by_label("Action").select_option("grant")
    page.get_by_role("button", name="Filter").click()
    entry = page.locator("tr.audit-entry").first
    expect(entry).to_contain_text("olivia")
    expect(entry).to_contain_text("speech-lab")
    check_page(page, "operator-audit")

    # Usage with its plot, and the CSV export.
    nav(page, "Usage")
    expect(page.locator("#usage-plot")).to_be_visible()
    check_page(page, "operator-usage")
    with page.expect_download() as download_info:
        page.locator("#export-usage").click()
    exported = download_info.value
    rows = list(csv.DictReader(io.StringIO(Path(exported.path()).read_text())))
    assert "speech-lab" in [row["project"] for row in rows]
    (speech,) = [row for row in rows if row["project"] == "speech-lab"]
    assert (speech["gpu_hours_budget"], speech["max_concurrent_gpus"]) == ("300.0", "2")

    nav(page, "Jobs")
    check_page(page, "operator-jobs")
    nav(page, "Datasets")
    check_page(page, "operator-datasets")


def test_startup_engineer_finds_quota_datasets_jobs_and_starts(portal, page, check_page):
    """alice, manager of acme-vision: the spawn page's quota, her project's GPU-hours used,
    the datasets she may use, a job she submitted, then a session, all from the top bar."""
    token = api_token(portal, "alice")
    # Her home exists once she has had a session; a job runs in it.
    (portal.settings_path.parent / "state" / "homes" / "alice").mkdir(parents=True)
    job = requests.post(
        f"{portal.portal_url}api/jobs",
        json={"project": "acme-vision", "name": "from-notebook", "command": ["true"]},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert job.status_code == 201, job.text
    log_in(page, portal, "alice")
    page.wait_for_url(re.compile(r".*/hub/spawn"), timeout=WAIT_MS)  # she lands where she starts
    expect(page.locator("#spawn_form")).to_contain_text("GPU-hours left")
    check_page(page, "engineer-spawn-page", include="#spawn_form")
    nav(page, "Usage")
    expect(page.locator("#usage-table")).to_contain_text("acme-vision")
    expect(page.locator("#usage-table")).to_contain_text("GPU-hours used / budget")
    check_page(page, "engineer-usage")
    nav(page, "Datasets")
    expect(page.locator("#dataset-iris")).to_be_visible()
    check_page(page, "engineer-datasets")
    nav(page, "Jobs")
    expect(page.locator(f"#job-{job.json()['id']}")).to_contain_text("from-notebook")
    check_page(page, "engineer-jobs")
    nav(page, "Sessions")
    page.locator("#spawn_form [type=submit]").click()
    page.wait_for_url(re.compile(rf"^{re.escape(portal.url)}/user/alice/"), timeout=WAIT_MS)
    expect(page.locator("#jp-main-dock-panel, .jp-LabShell").first).to_be_visible(timeout=WAIT_MS)
