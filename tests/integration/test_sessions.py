"""Sessions through the real hub: the spawn page, REST bypass attempts, capacity, usage."""

from __future__ import annotations

import html

import pytest
import requests

from tests.harness import running_portal, wait_until

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "olivia": "olivia-pw"}
# Tests run without simulated GPUs: NVML finds no A100 on the test machines.
NO_A100 = (
    "This machine has no NVIDIA-A100-SXM4-80GB GPU, so the flavor 'a100x1' cannot start here; "
    "choose another flavor or ask the operators."
)


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    with running_portal(tmp_path_factory.mktemp("sessions"), USERS) as running:
        yield running


def _token(portal, session, name):
    response = session.post(
        f"{portal.url}/hub/api/users/{name}/tokens", json={"expires_in": 600}, timeout=30
    )
    return response.json()["token"]


def _servers(portal, session, name):
    return session.get(f"{portal.url}/hub/api/users/{name}", timeout=30).json()["servers"]


def _usage(portal, token):
    return {
        u["slug"]: u
        for u in requests.get(
            f"{portal.portal_url}api/usage", headers={"Authorization": f"token {token}"}, timeout=30
        ).json()
    }


def _wait_ready(portal, session, name):
    wait_until(
        lambda: _servers(portal, session, name).get("", {}).get("ready"),
        timeout=120,
        what=f"{name}'s server",
    )


def _stop(portal, session, name):
    session.delete(f"{portal.url}/hub/api/users/{name}/server", timeout=60)
    wait_until(lambda: "" not in _servers(portal, session, name), timeout=60, what="stop")


@pytest.mark.parametrize(
    ("options", "status", "words"),
    [
        ({"project": "uni-nlp"}, 403, "not a member of a project 'uni-nlp'"),
        ({"project": "acme-vision", "image": "made-up"}, 403, "There is no image 'made-up'"),
        ({"project": "acme-vision", "flavor": "h100x8"}, 403, "There is no flavor 'h100x8'"),
        ({"project": "acme-vision", "flavor": "$(rm -rf /)"}, 403, "There is no flavor"),
        ({"project": "../../etc/passwd"}, 403, "not a member"),
        ({"project": "acme-vision", "profile": "gpu"}, 400, "Unknown session option 'profile'"),
        ({"project": ["acme-vision", "uni-nlp"]}, 400, "must be a non-empty text"),
        ({"project": ["acme-vision"]}, 400, "must be a non-empty text"),
        ({"project": "x" * 5000}, 400, "too long"),
        ({"project": "acme-vision", "flavor": "a100x1"}, 409, NO_A100),
    ],
)
def test_rest_api_bypass_attempts_are_refused_and_start_nothing(portal, options, status, words):
    session = portal.login("alice", USERS["alice"])
    response = session.post(f"{portal.url}/hub/api/users/alice/server", json=options, timeout=90)
    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert "" not in _servers(portal, session, "alice")
    usage = _usage(portal, _token(portal, session, "alice"))
    assert usage["acme-vision"]["running_sessions"] == 0


def test_disallowed_flavor_of_a_project_is_refused(portal):
    session = portal.login("bob", USERS["bob"])
    options = {"project": "uni-nlp", "flavor": "a100x1", "image": "python-cpu"}
    response = session.post(f"{portal.url}/hub/api/users/bob/server", json=options, timeout=90)
    assert response.status_code == 403
    assert "may not use the flavor '1 x A100 80GB'" in response.json()["message"]


def test_spawn_page_start_with_chosen_project_and_usage(portal):
    session = portal.login("bob", USERS["bob"])
    page = session.get(f"{portal.url}/hub/spawn", timeout=60)
    assert page.status_code == 200
    assert "ACME Vision (startup) (acme-vision)" in page.text
    assert "University NLP lab (uni-nlp)" in page.text
    assert "name='flavor-uni-nlp' value='cpu-small'" in page.text
    assert "GPU-hours left" in page.text
    # The hub checks the session's X-XSRFToken header (set by Portal.login).
    form = {
        "project": "uni-nlp",
        "flavor-uni-nlp": "cpu-small",
        "image-uni-nlp": "python-cpu",
        "flavor-acme-vision": "a100x1",  # a hidden block's leftovers are ignored
    }
    response = session.post(f"{portal.url}/hub/spawn/bob", data=form, timeout=120)
    assert response.status_code == 200
    _wait_ready(portal, session, "bob")
    token = _token(portal, session, "bob")
    headers = {"Authorization": f"token {token}"}
    # The project folder is in the session's home as ~/project.
    listing = requests.get(f"{portal.url}/user/bob/api/contents/", headers=headers, timeout=30)
    assert "project" in [item["name"] for item in listing.json()["content"]]
    assert _usage(portal, token)["uni-nlp"]["running_sessions"] == 1
    _stop(portal, session, "bob")
    usage = _usage(portal, token)["uni-nlp"]
    assert usage["running_sessions"] == 0 and usage["gpus_in_use"] == 0


def test_spawn_page_shows_the_refusal_reason(portal):
    session = portal.login("alice", USERS["alice"])
    page = session.get(f"{portal.url}/hub/spawn", timeout=60)
    assert html.escape(NO_A100) in page.text  # no GPU here (NVML), so a100x1 cannot start
    form = {
        "project": "acme-vision",
        "flavor-acme-vision": "a100x1",
        "image-acme-vision": "pytorch",
    }
    response = session.post(f"{portal.url}/hub/spawn/alice", data=form, timeout=120)
    assert html.escape(NO_A100) in response.text
    assert "name='project'" in response.text  # the form is shown again
    assert "" not in _servers(portal, session, "alice")


def test_user_without_project_is_told_why(portal):
    session = portal.login("carol", USERS["carol"])
    page = session.get(f"{portal.url}/hub/spawn", timeout=60)
    assert "You do not belong to any project yet" in page.text
    response = session.post(f"{portal.url}/hub/api/users/carol/server", timeout=90)
    assert response.status_code == 403
    assert "no active project" in response.json()["message"]


def test_portal_closes_records_of_sessions_the_hub_no_longer_runs(tmp_path, monkeypatch):
    """A record left open (its session ended while nobody could tell the portal) is closed
    by the portal's reconciliation with the hub, which runs at start and periodically."""
    monkeypatch.setenv("AITESTBED_RECONCILE_SECONDS", "1")
    with running_portal(tmp_path, {"alice": "pw"}) as running:
        token = (tmp_path / "state" / "portal_api_token").read_text()
        record = requests.post(
            f"{running.portal_url}api/internal/sessions",
            json={
                "user": "alice",
                "project": "acme-vision",
                "flavor": "cpu-small",
                "image": "python-cpu",
            },
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert record.status_code == 201
        session = running.login("alice", "pw")
        user_token = _token(running, session, "alice")
        wait_until(
            lambda: _usage(running, user_token)["acme-vision"]["running_sessions"] == 0,
            timeout=30,
            what="the stale record to be closed",
        )
