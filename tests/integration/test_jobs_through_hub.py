"""Jobs through the real embedded portal: hub + proxy + portal service (local backend).

The notebook-side CLI talks to the portal through the proxy with a real hub token, exactly
as it does from a user's session; the portal's own background poller tracks the job.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from tests.harness import running_portal

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def _token(portal, name: str) -> str:
    session = portal.login(name, USERS[name])
    response = session.post(
        f"{portal.url}/hub/api/users/{name}/tokens",
        json={"note": "jobs test", "expires_in": 600},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def test_cli_job_through_the_real_hub_and_privacy(tmp_path):
    with running_portal(tmp_path / "portal", USERS) as portal:
        (tmp_path / "portal" / "state" / "homes" / "alice").mkdir(parents=True, exist_ok=True)
        alice = _token(portal, "alice")
        env = {**os.environ, "AITESTBED_PORTAL_URL": portal.portal_url}
        env["JUPYTERHUB_API_TOKEN"] = alice
        cli = [sys.executable, "-m", "aitestbed.notebook.cli", "job"]
        submitted = subprocess.run(
            [
                *cli,
                "submit",
                "--name",
                "through-hub",
                "--wait",
                "--",
                "python",
                "-c",
                "import os; print('job', os.environ['AITESTBED_PROJECT'])",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr + portal.log()[-3000:]
        job_id = int(submitted.stdout.split()[2])
        logs = subprocess.run(
            [*cli, "logs", str(job_id)], env=env, capture_output=True, text=True, timeout=60
        )
        assert logs.stdout.strip() == "job acme-vision"

        bob = {"Authorization": f"token {_token(portal, 'bob')}"}
        response = requests.get(f"{portal.portal_url}api/jobs/{job_id}", headers=bob, timeout=30)
        assert response.status_code == 404
        assert requests.get(f"{portal.portal_url}api/jobs", headers=bob, timeout=30).json() == []
        anonymous = requests.get(f"{portal.portal_url}api/jobs", timeout=30)
        assert anonymous.status_code == 401
