"""``aitestbed-demo`` as a person runs it: it comes up without red lines nobody can act on,
a session starts, and Ctrl-C stops everything with a clean message, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests import harness
from tests.harness import wait_until

pytestmark = pytest.mark.integration

DEMO = Path(sys.executable).with_name("aitestbed-demo")


def test_demo_starts_quietly_and_stops_cleanly_with_a_running_session(tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump(harness.test_settings(tmp_path / "state", {"alice": "pw"})))
    url = yaml.safe_load(settings.read_text())["site"]["bind_url"].rstrip("/")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [str(DEMO), "--settings", str(settings)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    try:
        wait_until(lambda: "Press Ctrl-C" in log.read_text(), timeout=120, what="the banner")
        session = requests.Session()
        session.get(f"{url}/hub/login", timeout=30)
        session.post(
            f"{url}/hub/login",
            data={"username": "alice", "password": "pw", "_xsrf": session.cookies["_xsrf"]},
            timeout=60,
        )
        session.headers["X-XSRFToken"] = session.cookies["_xsrf"]
        started = session.post(f"{url}/hub/api/users/alice/server", json={}, timeout=120)
        assert started.status_code in (201, 202), started.text
        wait_until(
            lambda: session.get(f"{url}/hub/api/users/alice", timeout=10).json()["servers"][""][
                "ready"
            ],
            timeout=120,
            what="alice's server",
        )
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in the launcher's terminal
        assert demo.wait(timeout=120) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output[-4000:]
    assert "404 GET /hub/health" not in output  # no polling through a proxy without routes
    assert output.rstrip().endswith("Stopped.")
    assert "alice: usage record 1 not closed now" in output  # one line, and it says why
