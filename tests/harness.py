"""Start the real portal (hub + proxy + portal service) on free loopback ports.

Used by the integration and browser tests and by the benchmarks. Every process runs in its
own process group, so a test that fails still leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests
import yaml
from aitestbed.hub.demo import start_hub, stop_process_group
from aitestbed.hub.demo_auth import hash_password

REPO = Path(__file__).resolve().parents[1]
HUB_CONFIG = REPO / "hub_config" / "jupyterhub_config.py"
VENV_BIN = Path(sys.executable).parent
# Cheap hashes keep test logins fast; the format is the real one.
TEST_ITERATIONS = 1_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_settings(
    state_dir: Path,
    users: dict[str, str],
    sections: dict[str, object] | None = None,
    **site: object,
) -> dict:
    """A settings document for tests: the embedded default on free ports; ``sections``
    replaces whole top-level sections (e.g. ``kubernetes``)."""
    base = yaml.safe_load((REPO / "hub_config" / "settings.yaml").read_text())
    base["site"].update(
        {
            "name": "Portal under test",
            "state_dir": str(state_dir),
            "bind_url": f"http://127.0.0.1:{free_port()}",
            "hub_port": free_port(),
            "portal_port": free_port(),
            "proxy_api_port": free_port(),
            "idle_timeout_seconds": 3600,
        }
    )
    # The demo simulates GPUs; tests get none (NVML: this machine's) unless they ask.
    base["site"].pop("simulated_gpus", None)
    base["site"].update(site)
    base.update(sections or {})
    if base["authentication"]["kind"] == "oidc":
        # Single sign-on refuses the demo's keys: operators come from the provider's groups.
        base["site"].pop("operators", None)
        return base
    base["authentication"]["demo_users"] = [
        {"name": name, "password_hash": hash_password(pw, iterations=TEST_ITERATIONS)}
        for name, pw in users.items()
    ]
    return base


class Portal:
    """A running hub with its proxy and services."""

    def __init__(
        self,
        settings_path: Path,
        process: subprocess.Popen,
        log_path: Path,
        env: dict[str, str] | None = None,
        config: Path = HUB_CONFIG,
    ) -> None:
        self.settings_path = settings_path
        self.process = process
        self.log_path = log_path
        self.env = env
        self.config = config
        doc = yaml.safe_load(settings_path.read_text())
        self.url = doc["site"]["bind_url"].rstrip("/")
        self.hub_api = f"http://127.0.0.1:{doc['site']['hub_port']}/hub/api"

    @property
    def portal_url(self) -> str:
        return f"{self.url}/services/portal/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def login(self, name: str, password: str) -> requests.Session:
        """Log in through the login form (with its _xsrf token), as a browser would."""
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login", timeout=30)
        page.raise_for_status()
        xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
        assert xsrf, "the login form carries an _xsrf token"
        response = session.post(
            f"{self.url}/hub/login?next=",
            data={"username": name, "password": password, "_xsrf": xsrf.group(1)},
            allow_redirects=False,
            timeout=60,
        )
        if response.status_code != 302:
            raise AssertionError(f"login of {name} failed: {response.status_code}")
        session.headers["X-XSRFToken"] = session.cookies.get("_xsrf", "")
        return session

    def stop(self) -> None:
        stop_process_group(self.process, timeout=20)
        # A hub that exited early leaves its proxy behind (it runs in a session of its own).
        pid_file = self.settings_path.parent / "state" / "proxy.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)

    def wait_ready(self) -> None:
        """Wait until the hub and the portal service answer through the proxy."""
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the hub exited early:\n{self.log()[-3000:]}")
            hub = requests.get(f"{self.url}/hub/health", timeout=2)
            api = requests.get(f"{self.portal_url}api/health", timeout=2)
            return hub.status_code == 200 and api.status_code == 200

        try:
            wait_until(ready, timeout=180, what="hub and portal service")
        except (TimeoutError, RuntimeError) as error:
            raise RuntimeError(f"{error}\n--- hub log ---\n{self.log()[-4000:]}") from None

    def restart(self) -> None:
        """Stop the hub with its proxy and services, start it again on the same state."""
        self.stop()
        with self.log_path.open("ab") as log:
            self.process = start_hub(
                self.settings_path,
                cwd=self.settings_path.parent,
                stdout=log,
                env=self.env,
                config=self.config,
            )
        self.wait_ready()


def wait_until(check, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # the thing we wait for is not up yet
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what} (last error: {last_error})")


@contextlib.contextmanager
def running_portal(
    workdir: Path,
    users: dict[str, str],
    *,
    sections: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
    hub_config: str = "",
    **site: object,
) -> Iterator[Portal]:
    """Start hub + proxy + portal with ``users``; stop everything afterwards.

    ``site`` overrides keys of the ``site`` section, ``sections`` whole top-level sections,
    ``env`` adds environment variables to the hub's processes, ``hub_config`` JupyterHub
    configuration lines run after the portal's own (``c`` is the config).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    settings_path = workdir / "settings.yaml"
    document = test_settings(workdir / "state", users, sections, **site)
    settings_path.write_text(yaml.safe_dump(document))
    config = HUB_CONFIG
    if hub_config:
        config = workdir / "jupyterhub_config.py"
        config.write_text(
            f"c = get_config()  # noqa: F821\nload_subconfig({str(HUB_CONFIG)!r})  # noqa: F821\n"
            + hub_config
        )
    log_path = workdir / "hub.log"
    log_path.write_bytes(b"")
    # Appending: processes that outlive a hub (sessions) keep writing to this file, and a
    # restarted hub must not have its lines overwritten by them.
    with log_path.open("ab") as log:
        process = start_hub(settings_path, cwd=workdir, stdout=log, env=env, config=config)
    portal = Portal(settings_path, process, log_path, env, config)
    try:
        portal.wait_ready()
        yield portal
    finally:
        portal.stop()
