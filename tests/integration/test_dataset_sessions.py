"""Datasets in embedded sessions through the real hub: ~/datasets holds links to exactly
the datasets the user may use in the session's project, the session's environment says
where they are, the decisions are audited, and a job through the hub reads them too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from aitestbed.settings import load_settings

from tests.datasets_support import local_section
from tests.harness import running_portal, wait_until
from tests.integration.test_embedded_portal import _api_token, _run_in_session, _start_server

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw", "bob": "bob-pw", "olivia": "olivia-pw"}
# What a notebook does to find a dataset (the notebook package computes the same path).
READ_IRIS = (
    "import os; from pathlib import Path; "
    "root = Path(os.environ.get('AITESTBED_DATASETS_DIR', '/datasets')); "
    "print(os.environ['AITESTBED_DATASETS']); print(root); "
    "print((root / 'iris' / 'data.csv').read_text().splitlines()[0])"
)


def _stop(portal, session, name):
    session.delete(f"{portal.url}/hub/api/users/{name}/server", timeout=60)

    def stopped():
        model = session.get(f"{portal.url}/hub/api/users/{name}", timeout=10).json()
        return "" not in model["servers"]

    wait_until(stopped, timeout=60, what=f"{name}'s server to stop")


def _listing(folder: Path) -> dict[str, str | None]:
    """``{name: link target or None for a real file}``."""
    return {p.name: os.readlink(p) if p.is_symlink() else None for p in sorted(folder.iterdir())}


def _server_environment(hub_port: int, user: str) -> dict[str, str]:
    """The environment of ``user``'s single-user server process of this hub (/proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if env.get("JUPYTERHUB_USER") == user and f":{hub_port}/" in env.get(
            "JUPYTERHUB_API_URL", ""
        ):
            return env
    raise AssertionError(f"no server process of {user} found")


def _audit(portal, action: str) -> list[tuple[str, str, bool, str]]:
    """The operators' view of the audit log for ``action``, oldest first."""
    olivia = portal.login("olivia", USERS["olivia"])
    token = _api_token(portal, olivia, "olivia")
    entries = requests.get(
        f"{portal.portal_url}api/dataset-audit",
        params={"action": action},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ).json()
    return [(e["user"], e["dataset"], e["allowed"], e["project"]) for e in reversed(entries)]


def test_sessions_and_jobs_see_exactly_the_allowed_datasets(tmp_path):
    data = tmp_path / "data"
    with running_portal(
        tmp_path / "portal", USERS, sections={"datasets": local_section(data)}
    ) as portal:
        state = tmp_path / "portal" / "state"
        settings = load_settings(portal.settings_path)
        hub_port = settings.site.hub_port
        # A link of an earlier session that is not allowed now, and a file of alice's own.
        alice_datasets = state / "homes" / "alice" / "datasets"
        alice_datasets.mkdir(parents=True)
        (alice_datasets / "wine").symlink_to(data / "wine")
        (alice_datasets / "notes.txt").write_text("mine")

        alice = portal.login("alice", USERS["alice"])
        _start_server(portal, alice, "alice", project="acme-vision")
        assert _listing(alice_datasets) == {"iris": str(data / "iris"), "notes.txt": None}
        token = _api_token(portal, alice, "alice")
        lines = _run_in_session(portal, token, "alice", READ_IRIS).strip().splitlines()
        assert lines[-3:] == ["iris", str(alice_datasets), "dataset,iris"]
        assert "digits is not mounted: accept its terms first" in portal.log()
        _stop(portal, alice, "alice")

        accepted = requests.post(
            f"{portal.portal_url}api/datasets/digits/terms",
            json={"version": "1"},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert accepted.status_code == 200, accepted.text
        _start_server(portal, alice, "alice", project="acme-vision")
        assert _listing(alice_datasets) == {
            "digits": str(data / "digits"),
            "iris": str(data / "iris"),
            "notes.txt": None,
        }
        env = _server_environment(hub_port, "alice")
        assert env["AITESTBED_DATASETS"] == "digits,iris"

        bob = portal.login("bob", USERS["bob"])
        bob_datasets = state / "homes" / "bob" / "datasets"
        (bob_datasets / "wine").mkdir(parents=True)  # bob's own folder, in the way
        (bob_datasets / "wine" / "mine.csv").write_text("mine")
        blocked = bob.post(
            f"{portal.url}/hub/api/users/bob/server", json={"project": "uni-nlp"}, timeout=90
        )
        assert blocked.status_code == 409, blocked.text
        assert "is not the link to the dataset 'wine'; rename it" in blocked.json()["message"]
        assert (bob_datasets / "wine" / "mine.csv").read_text() == "mine"
        bob_token = {"Authorization": f"token {_api_token(portal, bob, 'bob')}"}
        usage = requests.get(f"{portal.portal_url}api/usage", headers=bob_token, timeout=30)
        assert {u["slug"]: u["running_sessions"] for u in usage.json()}["uni-nlp"] == 0
        (bob_datasets / "wine").rename(state / "homes" / "bob" / "my-wine")
        _start_server(portal, bob, "bob", project="uni-nlp")
        assert _listing(bob_datasets) == {"iris": str(data / "iris"), "wine": str(data / "wine")}
        env = _server_environment(hub_port, "bob")
        assert env["AITESTBED_DATASETS_DIR"] == str(bob_datasets)
        assert env["AITESTBED_DATASETS"] == "iris,wine"
        # The dataset files are the same for everyone and cannot be written through a link
        # by accident (they are read-only on disk; see the embedded mode's limits).

        assert _audit(portal, "mount") == [
            ("alice", "iris", True, "acme-vision"),
            ("alice", "digits", False, "acme-vision"),
            ("alice", "digits", True, "acme-vision"),
            ("alice", "iris", True, "acme-vision"),
            # the decisions of bob's blocked start are recorded too (decided, then blocked)
            ("bob", "iris", True, "uni-nlp"),
            ("bob", "wine", True, "uni-nlp"),
            ("bob", "iris", True, "uni-nlp"),
            ("bob", "wine", True, "uni-nlp"),
        ]

        # A job through the hub with the notebook CLI reads its dataset the same way.
        env = {
            **os.environ,
            "AITESTBED_PORTAL_URL": portal.portal_url,
            "JUPYTERHUB_API_TOKEN": _api_token(portal, bob, "bob"),
        }
        cli = [sys.executable, "-m", "aitestbed.notebook.cli", "job"]
        submitted = subprocess.run(
            [*cli, "submit", "--project", "uni-nlp", "--dataset", "iris", "--wait", "--",
             "python", "-c", READ_IRIS],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        job_id = int(submitted.stdout.split()[2])
        logs = subprocess.run(
            [*cli, "logs", str(job_id)], env=env, capture_output=True, text=True, timeout=60
        )
        assert logs.stdout.strip().splitlines()[0] == "iris"
        assert logs.stdout.strip().splitlines()[-1] == "dataset,iris"
        refused = subprocess.run(
            [*cli, "submit", "--project", "uni-nlp", "--dataset", "digits", "--", "true"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode != 0
        assert "digits" in refused.stderr + refused.stdout
        headers = {"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}"}
        assert (
            requests.get(f"{portal.portal_url}api/jobs", headers=headers, timeout=30).json()[0][
                "id"
            ]
            == job_id
        )  # the refused job was not recorded
        _stop(portal, alice, "alice")
        _stop(portal, bob, "bob")
