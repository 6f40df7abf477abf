"""JupyterLab in safe mode through the real hub: a session that mounts pseudonymized data
refuses raw downloads and exports whoever asks (the session's own token over HTTP, as a
script would), still serves notebooks for editing, and an ordinary session is unaffected."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from aitestbed.notebook.safe_zone import NOT_A_NOTEBOOK, REFUSED_DOWNLOAD, REFUSED_EXPORT
from aitestbed.policy.safezone import SAFE_MODE_ARGS
from aitestbed.settings import load_settings

from tests.datasets_support import local_section
from tests.harness import running_portal
from tests.integration.test_dataset_sessions import _server_environment, _stop
from tests.integration.test_embedded_portal import _api_token, _start_server

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
SECRET_ROW = "pseudonym-7f3a,1979,female,diagnosis-x"
NOTEBOOK = {
    "cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Analysis", "id": "a1"}],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _files(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "analysis.ipynb").write_text(json.dumps(NOTEBOOK))
    (home / "extract.csv").write_text(f"id,year,sex,code\n{SECRET_ROW}\n")
    (home / "renamed.ipynb").write_text(f"id,year,sex,code\n{SECRET_ROW}\n")
    (home / "model.py").write_text("print('fit')\n")


def _message(response: requests.Response) -> str:
    try:
        return response.json()["message"]
    except ValueError:
        return response.text


def test_a_safe_session_refuses_downloads_and_exports_an_ordinary_one_does_not(tmp_path):
    data = tmp_path / "data"
    section = {d["slug"]: d for d in local_section(data)}
    until = (date.today() + timedelta(days=30)).isoformat()
    section["digits"].update(
        {
            "class": "pseudonymized",
            "purposes": {"acme-vision": {"purpose": "ocr", "expires": until}},
        }
    )
    with running_portal(
        tmp_path / "portal", USERS, sections={"datasets": list(section.values())}
    ) as portal:
        state = tmp_path / "portal" / "state"
        hub_port = load_settings(portal.settings_path).site.hub_port
        alice = portal.login("alice", USERS["alice"])
        token = _api_token(portal, alice, "alice")
        headers = {"Authorization": f"token {token}"}
        accepted = requests.post(
            f"{portal.portal_url}api/datasets/digits/terms",
            json={"version": "1"},
            headers=headers,
            timeout=30,
        )
        assert accepted.status_code == 200, accepted.text
        _files(state / "homes" / "alice")
        _start_server(portal, alice, "alice", project="acme-vision")
        env = _server_environment(hub_port, "alice")
        assert env["AITESTBED_SAFE_MODE"] == "1"
        assert env["AITESTBED_OUTBOX"].endswith("/acme-vision/outbox")
        assert Path(env["AITESTBED_OUTBOX"]).is_dir()
        base = f"{portal.url}/user/alice"

        def get(path: str, **params) -> requests.Response:
            return requests.get(f"{base}/{path}", params=params, headers=headers, timeout=60)

        refused = {
            "contents of a data file": get("api/contents/extract.csv", content=1),
            "contents, base64": get("api/contents/extract.csv", content=1, format="base64"),
            "a dataset's file": get("api/contents/datasets/digits/data.csv", content=1),
            "/files download": get("files/extract.csv", download=1),
            "/files of a notebook": get("files/analysis.ipynb"),
            "raw notebook as a file": get("api/contents/analysis.ipynb", type="file", content=1),
        }
        for what, response in refused.items():
            assert (response.status_code, _message(response)) == (403, REFUSED_DOWNLOAD), what
            assert SECRET_ROW not in response.text, what
        export = get("nbconvert/html/analysis.ipynb", download="true")
        assert (export.status_code, _message(export)) == (403, REFUSED_EXPORT)
        posted = requests.post(
            f"{base}/nbconvert/html", json={"content": NOTEBOOK}, headers=headers, timeout=60
        )
        assert (posted.status_code, _message(posted)) == (403, REFUSED_EXPORT)
        renamed = get("api/contents/renamed.ipynb", content=1)
        assert (renamed.status_code, _message(renamed)) == (
            403,
            NOT_A_NOTEBOOK.format(path="renamed.ipynb"),
        )
        assert SECRET_ROW not in renamed.text

        # Editing goes on: notebooks and small code files open, folders list, saves work.
        notebook = get("api/contents/analysis.ipynb", content=1)
        assert notebook.status_code == 200
        assert notebook.json()["content"]["cells"][0]["source"] == "# Analysis"
        assert get("api/contents/model.py", content=1).json()["content"] == "print('fit')\n"
        listing = get("api/contents", content=1).json()
        assert {"analysis.ipynb", "extract.csv", "model.py"} <= {
            item["name"] for item in listing["content"]
        }
        saved = requests.put(
            f"{base}/api/contents/new.ipynb",
            json={"type": "notebook", "format": "json", "content": NOTEBOOK},
            headers=headers,
            timeout=60,
        )
        assert saved.status_code == 201, saved.text
        _stop(portal, alice, "alice")

        bob = portal.login("bob", USERS["bob"])
        bob_headers = {"Authorization": f"token {_api_token(portal, bob, 'bob')}"}
        _files(state / "homes" / "bob")
        _start_server(portal, bob, "bob", project="uni-nlp")
        env = _server_environment(hub_port, "bob")
        assert "AITESTBED_SAFE_MODE" not in env
        base = f"{portal.url}/user/bob"
        download = requests.get(
            f"{base}/files/extract.csv", params={"download": 1}, headers=bob_headers, timeout=60
        )
        assert (download.status_code, download.text.splitlines()[1]) == (200, SECRET_ROW)
        contents = requests.get(
            f"{base}/api/contents/extract.csv",
            params={"content": 1},
            headers=bob_headers,
            timeout=60,
        )
        assert contents.status_code == 200
        assert SECRET_ROW in contents.json()["content"]
        html = requests.get(
            f"{base}/nbconvert/html/analysis.ipynb", headers=bob_headers, timeout=120
        )
        assert html.status_code == 200
        assert "Analysis" in html.text
        _stop(portal, bob, "bob")
    assert SAFE_MODE_ARGS[0].endswith("SafeContentsManager")
