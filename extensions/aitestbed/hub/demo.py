"""``aitestbed-demo``: run the whole portal on this machine (the embedded default).

Validates the settings, prepares the portal database (``aitestbed-portal init-db``),
starts JupyterHub (which starts the proxy, the portal service and the idle culler), waits
until everything answers, prints where to go and how to log in, and stops everything it
started on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from aitestbed.hub.setup import REPO_ROOT, find_proxy_command, read_or_create_secret
from aitestbed.settings import SETTINGS_ENV, SettingsError, load_settings

DEFAULT_SETTINGS = REPO_ROOT / "hub_config" / "settings.yaml"
HUB_CONFIG = REPO_ROOT / "hub_config" / "jupyterhub_config.py"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL
            return response.status == 200
    except OSError:
        return False


def _routed(api_port: int, token: str, prefixes: tuple[str, ...]) -> bool:
    """Whether the proxy (its REST API on ``api_port``) has a route for every prefix."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/api/routes", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback
            routes = json.loads(response.read())
    except (OSError, ValueError):
        return False
    return all(prefix in routes for prefix in prefixes)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: parse after its last ')'.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """Stop the hub and everything it started (proxy, services, sessions).

    The hub alone gets SIGTERM first so it can stop its sessions, services and proxy in
    order. JupyterHub starts those in sessions of their own, so whatever is still alive
    after ``timeout`` is found by parentage (taken before the hub exits) and killed.
    """
    started = descendants(process.pid) if process.poll() is None else []
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in started):
        time.sleep(0.1)
    for pid in started:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _default_signals() -> None:
    """Run in the hub's child process: undo an inherited "ignore SIGINT".

    A launcher started in the background inherits an ignored SIGINT and passes it on; the
    hub stops its services and sessions with SIGINT, and would wait out their timeouts.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_hub(
    settings_path: Path,
    *,
    cwd: Path,
    stdout=None,
    env: dict[str, str] | None = None,
    config: Path = HUB_CONFIG,
) -> subprocess.Popen:
    """Start JupyterHub with the portal's configuration in a process group of its own;
    ``env`` adds to (or replaces in) this process's environment; ``config``: another
    JupyterHub configuration file (tests load the portal's and change a few things)."""
    env = {**os.environ, **(env or {}), SETTINGS_ENV: str(settings_path)}
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.Popen(
        [str(bin_dir / "jupyterhub"), "-f", str(config)],
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        start_new_session=True,
        preexec_fn=_default_signals,
    )


def prepare_portal_database(settings_path: Path) -> int:
    """Migrate and seed the portal database with the portal's own command (its exit status).

    A separate process: this launcher starts the portal's programs, it does not run the
    portal's code (nothing in ``aitestbed.hub`` imports ``aitestbed.portal``).
    """
    command = [
        sys.executable,
        "-m",
        "aitestbed.portal",
        "init-db",
        "--settings",
        str(settings_path),
    ]
    return subprocess.run(command, check=False).returncode


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


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
    print(f"Preparing the portal database in {settings.site.state_dir} ...", flush=True)
    if prepare_portal_database(settings.path) != 0:
        print("The portal database could not be prepared; see above.", file=sys.stderr)
        return 1
    print("Starting JupyterHub, the proxy, the portal service and the idle culler ...", flush=True)
    hub = start_hub(settings.path, cwd=settings.site.state_dir)
    # Ctrl-C reaches only this process (the hub has its own session), so this process stops
    # the hub's group. Handlers are set explicitly: a launcher started in the background
    # inherits an ignored SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    url = settings.site.bind_url.rstrip("/")
    try:
        deadline = time.monotonic() + 90
        # Ask through the proxy only once it has the hub's and the portal's routes: every
        # try before that is a red "404" line in the log that nobody can act on.
        token = os.environ.get("CONFIGPROXY_AUTH_TOKEN") or read_or_create_secret(
            settings.site.state_dir / "proxy_auth_token"
        )
        checks = [
            lambda: _routed(settings.site.proxy_api_port, token, ("/", "/services/portal")),
            lambda: _answers(f"{url}/hub/health"),
            lambda: _answers(f"{url}/services/portal/api/health"),
        ]
        while checks:
            if checks[0]():
                checks.pop(0)
                continue
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
