"""The notebook package: portal discovery, client errors, the quota panel, and that it never
pulls the hub side into a user's session."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ipywidgets
import pytest
from aitestbed.notebook.client import (
    PortalClient,
    PortalError,
    allocation_elapsed,
    discover_portal_url,
)
from aitestbed.notebook.widgets import QuotaPanel

from tests.harness import free_port

ME = {
    "name": "alice",
    "operator": False,
    "projects": [
        {
            "slug": "acme-vision",
            "title": "ACME <Vision>",
            "status": "active",
            "role": "manager",
            "allocation": {
                "gpu_hours": 2000.0,
                "max_concurrent_gpus": 4,
                "storage_quota_gb": 10240,
                "valid_from": "2026-01-01",
                "valid_until": "2026-12-31",
                "slurm_account": "acme",
            },
        }
    ],
}

USAGE = [
    {
        "slug": "acme-vision",
        "title": "ACME <Vision>",
        "gpu_hours_budget": 2000.0,
        "gpu_hours_used": 1700.5,
        "max_concurrent_gpus": 4,
        "gpus_in_use": 1.5,
        "running_sessions": 2,
        "valid_from": "2026-01-01",
        "valid_until": "2026-12-31",
    }
]


class _Portal(BaseHTTPRequestHandler):
    """A tiny stand-in portal: checks the token header and answers /api/me."""

    def do_GET(self):
        if self.headers.get("Authorization") != "token good":
            self._reply(403, {"detail": "This token is not valid for the portal."})
        elif self.path == "/services/portal/api/me":
            self._reply(200, ME)
        elif self.path == "/services/portal/api/usage":
            self._reply(200, USAGE)
        else:
            self._reply(404, {"detail": "not here"})

    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def portal_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/portal/"
    server.shutdown()


def test_discovery_prefers_explicit_url_then_hub_api():
    assert discover_portal_url({"AITESTBED_PORTAL_URL": "http://p:1/x"}) == "http://p:1/x/"
    env = {"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"}
    assert discover_portal_url(env) == "http://127.0.0.1:8081/services/portal/"
    with pytest.raises(PortalError, match="Cannot find the portal"):
        discover_portal_url({})


def test_client_reads_token_from_environment(monkeypatch, portal_url):
    monkeypatch.setenv("AITESTBED_PORTAL_URL", portal_url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "good")
    assert PortalClient().me()["name"] == "alice"
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    with pytest.raises(PortalError, match="JUPYTERHUB_API_TOKEN is not set"):
        PortalClient()


def test_client_errors_are_clear(portal_url):
    with pytest.raises(PortalError, match=r"refused api/me \(403\): This token") as refused:
        PortalClient(portal_url, "bad").me()
    assert refused.value.status == 403
    with pytest.raises(PortalError, match="cannot be reached"):
        PortalClient(f"http://127.0.0.1:{free_port()}/", "good", timeout=2).me()


def test_quota_panel_renders_projects(portal_url):
    panel = QuotaPanel(PortalClient(portal_url, "good"), today=date(2026, 7, 2))
    assert "Projects of alice" in panel.header.value
    (card,) = panel.body.children
    title, facts, used, period = card.children
    assert "ACME &lt;Vision&gt;" in title.value  # escaped, never raw HTML from the API
    assert "1,700.50 used of 2000 (299.50 left)" in facts.value and "10240 GB" in facts.value
    assert "1.5 of 4 (2 running sessions)" in facts.value
    assert isinstance(used, ipywidgets.FloatProgress) and isinstance(
        period, ipywidgets.FloatProgress
    )
    assert used.description == "GPU-hours used (85%)" and used.bar_style == "warning"
    assert used.value == pytest.approx(1700.5 / 2000)
    assert period.description == "Allocation period (50% passed)"
    assert period.value == pytest.approx(183 / 365)


def test_quota_panel_says_what_the_sessions_gpus_are(portal_url):
    client = PortalClient(portal_url, "good")
    simulated = {"AITESTBED_GPUS": "GPU-simulated-0001", "AITESTBED_GPU_SIMULATED": "1"}
    panel = QuotaPanel(client, today=date(2026, 7, 2), environ=simulated)
    assert (
        "<p class='aitestbed-gpus'>GPUs of this session: GPU-simulated-0001 (simulated: quota "
        "and usage count them, but CUDA finds no device).</p>"
    ) in panel.header.value
    real = QuotaPanel(client, environ={"AITESTBED_GPUS": "GPU-a,GPU-b"})
    assert "GPUs of this session: GPU-a, GPU-b (CUDA_VISIBLE_DEVICES)." in real.header.value
    assert "aitestbed-gpus" not in QuotaPanel(client, environ={}).header.value


def test_quota_panel_shows_errors_instead_of_raising(portal_url):
    panel = QuotaPanel(PortalClient(portal_url, "bad"))
    assert "refused" in panel.header.value and panel.body.children == ()


def test_quota_panel_refresh_button(portal_url):
    client = PortalClient(portal_url, "bad")
    panel = QuotaPanel(client)
    client.token = "good"
    panel.refresh_button.click()
    assert "Projects of alice" in panel.header.value


@pytest.mark.parametrize(
    ("today", "share"),
    [(date(2025, 1, 1), 0.0), (date(2026, 1, 1), 1 / 365), (date(2027, 1, 1), 1.0)],
)
def test_allocation_elapsed(today, share):
    assert allocation_elapsed("2026-01-01", "2026-12-31", today) == pytest.approx(share)


def test_notebook_side_imports_no_hub_side_package():
    code = (
        "import sys, aitestbed, aitestbed.notebook.widgets, aitestbed.notebook.client;"
        "import aitestbed.notebook.job_widgets, aitestbed.notebook.magics, aitestbed.notebook.cli;"
        "aitestbed.quota_panel; aitestbed.jobs; aitestbed.job_monitor;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'jupyterhub', 'sqlalchemy', 'fastapi', 'alembic', 'uvicorn', 'yaml', 'jsonschema'} "
        "or m.startswith(('aitestbed.hub', 'aitestbed.portal', 'aitestbed.settings')));"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_notebook_extra_does_not_depend_on_hub_packages():
    from importlib.metadata import requires

    notebook = [r for r in requires("aitestbed") if 'extra == "notebook"' in r]
    names = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower() for r in notebook}
    # papermill runs notebook jobs on the cluster, in the job's (curated) image
    assert names == {"requests", "ipywidgets", "papermill"}
