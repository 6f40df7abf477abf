"""``aitestbed-demo``: run the whole portal on this machine (the embedded default).

Validates the settings, prepares the portal database, starts JupyterHub (which starts the
proxy, the portal service and the idle culler), waits until everything answers, prints
where to go and how to log in, and stops everything it started on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from aitestbed.hub.setup import REPO_ROOT, find_proxy_command
from aitestbed.settings import SETTINGS_ENV, SettingsError, load_settings

DEFAULT_SETTINGS = REPO_ROOT / "hub_config" / "settings.yaml"
HUB_CONFIG = REPO_ROOT / "hub_config" / "jupyterhub_config.py"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL
            return response.status == 200
    except OSError:
        return False


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """Stop the hub and everything in its process group (proxy, services, sessions)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aitestbed-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=os.environ.get(SETTINGS_ENV, str(DEFAULT_SETTINGS)))
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.settings)
        find_proxy_command()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    from aitestbed.portal.service import prepare_database

    print(f"Preparing the portal database in {settings.site.state_dir} ...", flush=True)
    prepare_database(settings).dispose()
    env = {**os.environ, SETTINGS_ENV: str(settings.path)}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    print("Starting JupyterHub, the proxy, the portal service and the idle culler ...", flush=True)
    hub = subprocess.Popen(
        [str(Path(bin_dir) / "jupyterhub"), "-f", str(HUB_CONFIG)],
        cwd=settings.site.state_dir,
        env=env,
        start_new_session=True,
    )
    # Ctrl-C reaches only this process (the hub has its own session); stop the hub's group.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    url = settings.site.bind_url.rstrip("/")
    try:
        deadline = time.monotonic() + 90
        while not (_answers(f"{url}/hub/health") and _answers(f"{url}/services/portal/api/health")):
            if hub.poll() is not None:
                print(f"JupyterHub exited with code {hub.returncode}; see above.", file=sys.stderr)
                return hub.returncode or 1
            if time.monotonic() > deadline:
                print("The portal did not come up within 90 s; see the log above.", file=sys.stderr)
                return 1
            time.sleep(0.5)
        banner = [
            "",
            f"  {settings.site.name} is running.",
            f"  Open {url}/ in your browser.",
            f"  Portal API: {url}/services/portal/api/docs",
        ]
        if settings.authentication.login_hint:
            banner.append(f"  {settings.authentication.login_hint}")
        banner += ["  Press Ctrl-C to stop everything.", ""]
        print("\n".join(banner), flush=True)
        return hub.wait()
    except KeyboardInterrupt:
        print("\nStopping the portal ...", flush=True)
        return 0
    finally:
        stop_process_group(hub)
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
