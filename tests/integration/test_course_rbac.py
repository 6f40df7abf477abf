"""Course staff act on their own students' servers through the hub's RBAC, with no admin
token: the real hub, proxy and portal, the demo course dl-101 (instructor ingrid, student
sam), and the portal keeping the hub's course groups in line with joins and removals."""

from __future__ import annotations

import html
import re

import pytest
import requests

from tests.harness import running_portal, wait_until

pytestmark = pytest.mark.integration

USERS = {"ingrid": "i-pw", "sam": "s-pw", "bob": "b-pw", "carol": "c-pw"}


def token_of(portal, name: str) -> str:
    session = portal.login(name, USERS[name])
    response = session.post(
        f"{portal.url}/hub/api/users/{name}/tokens",
        json={"note": "course test", "expires_in": 900},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def authorize(browser: requests.Session, page: requests.Response) -> requests.Response:
    """Press "Authorize" on the hub's OAuth page: post its form as the browser would."""
    form = re.search(r"<form[^>]*>(.*?)</form>", page.text, re.S).group(1)
    fields = [
        (name, value)
        for tag in re.findall(r"<input[^>]*>", form)
        for name, value in [(re.search(r'name="([^"]+)"', tag), re.search(r'value="([^"]*)"', tag))]
        if name
    ]
    data = [(n.group(1), html.unescape(v.group(1)) if v else "on") for n, v in fields]
    return browser.post(page.url, data=data, timeout=120)


def hub(portal, token: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{portal.url}/hub/api/{path}",
        headers={"Authorization": f"token {token}"},
        timeout=120,
        **kwargs,
    )


def test_instructor_acts_on_own_students_only_and_follows_the_roster(tmp_path):
    with running_portal(tmp_path, USERS, env={"AITESTBED_COURSE_SYNC_SECONDS": "1"}) as portal:
        ingrid, carol = token_of(portal, "ingrid"), token_of(portal, "carol")
        token_of(portal, "sam"), token_of(portal, "bob")  # they have logged in once

        listed = {u["name"] for u in hub(portal, ingrid, "GET", "users").json()}
        assert "sam" in listed and "bob" not in listed and "carol" not in listed
        assert hub(portal, ingrid, "GET", "users/bob").status_code == 404

        # Start the student's server, reach it, stop it: the course role, nothing more.
        started = hub(portal, ingrid, "POST", "users/sam/server", json={})
        assert started.status_code in (201, 202), started.text
        wait_until(
            lambda: hub(portal, ingrid, "GET", "users/sam").json()["servers"][""]["ready"],
            timeout=120,
            what="sam's server",
        )
        # Open it as a browser does: the hub's OAuth resolves the course group and gives
        # the instructor a token for this one server. (A plain API token with a group-
        # filtered access scope is not enough for a single-user server: JupyterHub's
        # services cannot resolve groups, see jupyterhub.services.auth.check_scopes.)
        browser = portal.login("ingrid", USERS["ingrid"])
        lab = browser.get(f"{portal.url}/user/sam/lab", timeout=120)
        # Another user's server asks the instructor once to authorize it, as in a browser.
        assert "Authorize access" in lab.text and "/user/sam/" in lab.text
        lab = authorize(browser, lab)
        assert lab.status_code == 200 and "JupyterLab" in lab.text
        assert browser.get(f"{portal.url}/user/sam/api/status", timeout=60).status_code == 200
        other = portal.login("bob", USERS["bob"]).get(f"{portal.url}/user/sam/lab", timeout=120)
        assert other.status_code == 403 or "JupyterLab" not in other.text
        assert hub(portal, ingrid, "POST", "users/bob/server", json={}).status_code in (403, 404)
        assert hub(portal, ingrid, "DELETE", "users/sam/server").status_code in (202, 204)

        # Carol joins with a code: the portal puts her into the hub's course group.
        portal_api = f"{portal.url}/services/portal/api/"
        code = requests.post(
            portal_api + "courses/dl-101/join-codes",
            json={"max_uses": 5, "valid_hours": 1},
            headers={"Authorization": f"token {ingrid}"},
            timeout=30,
        ).json()["code"]
        joined = requests.post(
            portal_api + "courses/join",
            json={"code": code},
            headers={"Authorization": f"token {carol}"},
            timeout=30,
        )
        assert joined.status_code == 200 and joined.json()["enrolled"] is True
        wait_until(
            lambda: hub(portal, ingrid, "GET", "users/carol").status_code == 200,
            timeout=30,
            what="carol in the course group",
        )
        # A student has no rights over another student.
        assert hub(portal, carol, "POST", "users/sam/server", json={}).status_code in (403, 404)

        # Removed from the course: out of the group, out of the instructor's reach.
        removed = requests.delete(
            portal_api + "courses/dl-101/members/carol",
            headers={"Authorization": f"token {ingrid}"},
            timeout=30,
        )
        assert removed.status_code == 204
        wait_until(
            lambda: hub(portal, ingrid, "GET", "users/carol").status_code == 404,
            timeout=30,
            what="carol out of the course group",
        )
