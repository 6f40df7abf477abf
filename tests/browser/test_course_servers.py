"""Start all / stop all from the instructor's course page, in headless Chromium against a
real hub, proxy and portal: the page's script calls the hub's API with the instructor's own
login (the course role), never an admin token. A class of four starts, every server ready;
a student of another course is neither started nor stopped.

The sessions are the stand-in of tests/faults/singleuser_standin.py (four JupyterLabs would
not fit a 2-core machine); what is tested is the page, the hub's rights and the start path.
Bounded: about two minutes. The course page is checked with axe-core (WCAG 2.1 A/AA).
"""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.chromium import CHROMIUM
from tests.faults.singleuser_standin import hub_config_lines
from tests.harness import REPO, running_portal, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]
WAIT_MS = 120_000
CLASS = ["stu1", "stu2", "stu3", "stu4"]
USERS = {"ingrid": "i-pw", "olivia": "o-pw", "otto": "t-pw", **{n: "s-pw" for n in CLASS}}


def course(slug: str, members: list[dict]) -> dict:
    return {
        "slug": slug,
        "title": slug.upper(),
        "term": {"start": "2026-01-01", "end": "2027-12-31"},
        "slots": [{"days": ["mon"], "start": "09:00", "end": "10:00"}],
        "outside_slots": "allowed",
        "environment": {"image": "python-cpu", "flavor": "cpu-small"},
        "allocation": {"gpu_hours": 10, "max_concurrent_gpus": 1},
        "members": members,
    }


def sections() -> dict:
    import yaml

    doc = yaml.safe_load((REPO / "hub_config" / "settings.yaml").read_text())
    for flavor in doc["flavors"]:
        if flavor["slug"] == "cpu-small":
            flavor["capacity"] = 20
    return {
        "flavors": doc["flavors"],
        "courses": [
            course(
                "lab-1",
                [{"user": "ingrid", "role": "instructor"}, *({"user": n} for n in CLASS)],
            ),
            course("other-1", [{"user": "olivia", "role": "instructor"}, {"user": "otto"}]),
        ],
    }


def servers(portal, token: str) -> dict[str, dict]:
    """Every active user's default server, as a hub admin sees it."""
    response = requests.get(
        f"{portal.url}/hub/api/users",
        params={"state": "active"},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    response.raise_for_status()
    return {u["name"]: u["servers"][""] for u in response.json() if "" in u["servers"]}


def test_start_all_and_stop_all_reach_the_class_only(browser, tmp_path, check_page):
    with running_portal(
        tmp_path, USERS, sections=sections(), hub_config=hub_config_lines()
    ) as portal:
        olivia = portal.login("olivia", USERS["olivia"])  # operator, hub admin: the observer
        admin = olivia.post(
            f"{portal.url}/hub/api/users/olivia/tokens", json={"expires_in": 900}, timeout=60
        ).json()["token"]
        otto = portal.login("otto", USERS["otto"])
        otto_token = otto.post(
            f"{portal.url}/hub/api/users/otto/tokens", json={"expires_in": 900}, timeout=60
        ).json()["token"]

        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        try:
            page = context.new_page()
            page.goto(f"{portal.url}/hub/login")
            page.get_by_label("Username").fill("ingrid")
            page.get_by_label("Password").fill(USERS["ingrid"])
            page.locator("form [type=submit]").click()
            page.wait_for_load_state()
            page.goto(f"{portal.url}/services/portal/courses/lab-1")
            page.wait_for_url(re.compile(r".*/services/portal/courses/lab-1$"), timeout=WAIT_MS)
            expect(page.locator("#roster tr.member")).to_have_count(5)
            assert page.locator('#roster tr[data-user="otto"]').count() == 0

            page.locator("#start-all").click()
            expect(page.locator("#class-progress")).to_have_text(
                "Start all finished: 4 running", timeout=WAIT_MS
            )
            for name in CLASS:
                expect(page.locator(f'#roster tr[data-user="{name}"] .server-state')).to_have_text(
                    "running"
                )
            check_page(page, "course-console")  # the staff's course page passes axe-core
            running = servers(portal, admin)
            assert sorted(running) == CLASS
            assert all(s["ready"] and not s["pending"] for s in running.values())

            # Otto (another course) starts his own server; stop all leaves it alone.
            started = requests.post(
                f"{portal.url}/hub/api/users/otto/server",
                json={"project": "other-1", "flavor": "cpu-small", "image": "python-cpu"},
                headers={"Authorization": f"token {otto_token}"},
                timeout=60,
            )
            assert started.status_code in (201, 202), started.text
            wait_until(
                lambda: servers(portal, admin).get("otto", {}).get("ready"),
                timeout=90,
                what="otto's server",
            )

            page.reload()  # the page reads the states from the hub through the portal
            for name in CLASS:
                expect(
                    page.locator(f'#roster tr[data-user="{name}"] .server-state')
                ).to_have_attribute("data-state", "running")
            page.locator("#stop-all").click()
            expect(page.locator("#class-progress")).to_have_text(
                "Stop all finished: 4 stopped", timeout=WAIT_MS
            )
            assert sorted(servers(portal, admin)) == ["otto"]
        finally:
            context.close()
