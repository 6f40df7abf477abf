"""The real embedded portal: hub + configurable-http-proxy + portal service + a session.

Everything runs as real processes on loopback ports; the session is a real
jupyterhub-singleuser (JupyterLab) started by the portal's local spawner.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.harness import REPO, running_portal, wait_until

pytestmark = pytest.mark.integration

KERNEL_CLIENT = Path(__file__).with_name("kernel_client.py")

SETTINGS = yaml.safe_load((REPO / "hub_config" / "settings.yaml").read_text())
# Framework names on the image cards and the modules that provide them.
IMPORT_NAMES = {"scikit-learn": "sklearn", "pytorch": "torch"}

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "olivia": "olivia-pw"}


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    with running_portal(tmp_path_factory.mktemp("portal"), USERS) as running:
        yield running


def _start_server(portal, session: requests.Session, name: str, **options: str) -> None:
    response = session.post(
        f"{portal.url}/hub/api/users/{name}/server", json=options or None, timeout=90
    )
    assert response.status_code in (201, 202), response.text

    def ready():
        model = session.get(f"{portal.url}/hub/api/users/{name}", timeout=10).json()
        return model["servers"].get("", {}).get("ready")

    wait_until(ready, timeout=120, what=f"{name}'s server")


def _api_token(portal, session: requests.Session, name: str) -> str:
    response = session.post(
        f"{portal.url}/hub/api/users/{name}/tokens",
        json={"note": "integration test", "expires_in": 600},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def test_login_start_server_reach_it_call_portal_and_stop(portal):
    session = portal.login("alice", USERS["alice"])
    _start_server(portal, session, "alice")

    # The session answers through the proxy (a page visit first runs its OAuth handshake,
    # as a browser does; the hub cookie alone is not a session credential).
    lab = session.get(f"{portal.url}/user/alice/lab", timeout=60)
    assert lab.status_code == 200
    status = session.get(f"{portal.url}/user/alice/api/status", timeout=30)
    assert status.status_code == 200
    assert "started" in status.json()

    token = _api_token(portal, session, "alice")
    headers = {"Authorization": f"token {token}"}
    me = requests.get(f"{portal.portal_url}api/me", headers=headers, timeout=30)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["name"] == "alice"
    assert body["operator"] is False
    assert [(p["slug"], p["role"]) for p in body["projects"]] == [("acme-vision", "manager")]
    assert body["projects"][0]["allocation"]["gpu_hours"] == 2000

    # Members see only their own projects; another tenant's project is a 404.
    assert [
        p["slug"]
        for p in requests.get(
            f"{portal.portal_url}api/projects", headers=headers, timeout=30
        ).json()
    ] == ["acme-vision"]
    other = requests.get(f"{portal.portal_url}api/projects/uni-nlp", headers=headers, timeout=30)
    assert other.status_code == 404

    stop = session.delete(f"{portal.url}/hub/api/users/alice/server", timeout=60)
    assert stop.status_code in (202, 204)

    def stopped():
        model = session.get(f"{portal.url}/hub/api/users/alice", timeout=10).json()
        return "" not in model["servers"]

    wait_until(stopped, timeout=60, what="alice's server to stop")
    gone = session.get(f"{portal.url}/user/alice/api/status", timeout=30, allow_redirects=False)
    assert gone.status_code != 200


def test_session_token_reaches_portal_from_inside_the_session(portal):
    """The notebook package finds the portal and its token in the session's environment."""
    session = portal.login("bob", USERS["bob"])
    # Every image runs from this machine's one environment: a card lists a framework only
    # as far as it is there (the kernel below imports the rest).
    form = session.get(f"{portal.url}/hub/spawn", timeout=60).text
    for image in SETTINGS["images"]:
        for name in image["frameworks"]:
            missing = importlib.util.find_spec(IMPORT_NAMES.get(name, name)) is None
            assert (f"{name} (not installed on this machine)" in form) == missing, name
    _start_server(portal, session, "bob", project="uni-nlp")
    try:
        # A real kernel in bob's session: the code uses only what the session's
        # environment holds (portal URL and the session's own token).
        code = (
            "import aitestbed, json; "
            "me = aitestbed.PortalClient().me(); "
            "print(json.dumps([p['slug'] for p in me['projects']]))"
        )
        token = _api_token(portal, session, "bob")
        output = _run_in_session(portal, token, "bob", code)
        assert json.loads(output.strip().splitlines()[-1]) == ["acme-vision", "uni-nlp"]

        # What the image's card lists is really there, and the terminal finds the CLI the
        # docs use (a terminal gets the same environment as the kernel).
        listed = next(i for i in SETTINGS["images"] if i["slug"] == "python-cpu")["frameworks"]
        modules = [IMPORT_NAMES.get(name, name) for name in listed]
        code = (
            "import importlib, json, subprocess\n"
            f"missing = [m for m in {modules!r} if importlib.util.find_spec(m) is None]\n"
            f"[importlib.import_module(m) for m in {modules!r} if m not in missing]\n"
            "cli = subprocess.run(['aitestbed', '--help'], capture_output=True, text=True)\n"
            "print(json.dumps([missing, cli.returncode, 'job' in cli.stdout]))"
        )
        output = _run_in_session(portal, token, "bob", code)
        assert json.loads(output.strip().splitlines()[-1]) == [[], 0, True], output
        # And in a real JupyterLab terminal, as a person types it.
        seen = _run_in_terminal(portal, token, "bob", "aitestbed --help", "AI Testbed Portal CLI")
        assert "command not found" not in seen
    finally:
        session.delete(f"{portal.url}/hub/api/users/bob/server", timeout=60)


def _run_in_session(portal, token: str, name: str, code: str) -> str:
    """Run ``code`` in a real kernel of the user's session and return what it printed."""
    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(
        f"{portal.url}/user/{name}/api/kernels", json={}, headers=headers, timeout=60
    )
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    ws_url = (
        portal.url.replace("http://", "ws://") + f"/user/{name}/api/kernels/{kernel_id}/channels"
    )
    try:
        result = subprocess.run(
            [sys.executable, str(KERNEL_CLIENT), ws_url, token, code],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        requests.delete(
            f"{portal.url}/user/{name}/api/kernels/{kernel_id}", headers=headers, timeout=30
        )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _run_in_terminal(portal, token: str, name: str, command: str, expected: str) -> str:
    """Type ``command`` into a new terminal of the session; return what it showed once
    ``expected`` appeared (or fail after 60 s with what it showed)."""
    headers = {"Authorization": f"token {token}"}
    created = requests.post(f"{portal.url}/user/{name}/api/terminals", headers=headers, timeout=60)
    assert created.status_code == 200, created.text
    terminal = created.json()["name"]
    ws_url = portal.url.replace("http://", "ws://") + (
        f"/user/{name}/terminals/websocket/{terminal}"
    )

    async def session() -> str:
        ws = await websocket_connect(HTTPRequest(ws_url, headers=headers))
        await ws.write_message(json.dumps(["stdin", command + "\r"]))
        shown = ""
        deadline = asyncio.get_running_loop().time() + 60
        while expected not in shown:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"{expected!r} never appeared in the terminal:\n{shown}"
            try:
                message = await asyncio.wait_for(ws.read_message(), left)
            except TimeoutError:
                raise AssertionError(f"{expected!r} never appeared:\n{shown}") from None
            assert message is not None, f"the terminal closed:\n{shown}"
            kind, *rest = json.loads(message)
            if kind == "stdout":
                shown += rest[0]
        ws.close()
        return shown

    try:
        return asyncio.run(session())
    finally:
        requests.delete(
            f"{portal.url}/user/{name}/api/terminals/{terminal}", headers=headers, timeout=30
        )


def test_wrong_password_and_unknown_user_are_refused(portal):
    for name, password in (("alice", "wrong"), ("mallory", "alice-pw"), ("alice; rm -rf /", "x")):
        with pytest.raises(AssertionError, match="login of"):
            portal.login(name, password)


def test_portal_refuses_missing_and_bogus_tokens(portal):
    assert requests.get(f"{portal.portal_url}api/me", timeout=30).status_code == 401
    bogus = requests.get(
        f"{portal.portal_url}api/me", headers={"Authorization": "token nope"}, timeout=30
    )
    assert bogus.status_code == 403


def test_operator_sees_every_project(portal):
    session = portal.login("olivia", USERS["olivia"])
    token = _api_token(portal, session, "olivia")
    projects = requests.get(
        f"{portal.portal_url}api/projects", headers={"Authorization": f"token {token}"}, timeout=30
    ).json()
    assert sorted(p["slug"] for p in projects) == ["acme-vision", "dl-101", "uni-nlp"]


def test_openapi_description_is_served(portal):
    spec = requests.get(f"{portal.portal_url}api/openapi.json", timeout=30).json()
    assert spec["openapi"].startswith("3.")
    assert "/services/portal/api/me" in spec["paths"]
