"""Spawn benchmark: the portal's embedded default against plain JupyterHub, in one run.

N users log in and then start their servers at the same moment. For every user the time is
measured from the start request (``POST /hub/api/users/<name>/server``) until the server
answers ``GET /user/<name>/api/status`` through the proxy with 200, authenticated with the
user's API token. After all servers are up (or have failed) the resident memory of the hub,
the portal service, the idle culler and the proxy is read from ``/proc``.

Variants, same spawner (PortalLocalSpawner, JupyterLab via jupyterhub-singleuser), same
timeouts, same home folder scheme:

* ``plain``: JupyterHub with DummyAuthenticator, no services; config written by this script.
* ``portal``: the embedded default (hub_config/jupyterhub_config.py + settings), started with
  ``tests.harness.running_portal``: DemoAuthenticator, portal service, idle culler.

Usage: ``.venv/bin/python bench/spawn_bench.py [--users 20] [--order plain,portal]``.
Results: a table on stdout and JSON in bench/results/spawn-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness import VENV_BIN, free_port, running_portal, wait_until  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
PROXY_COMMAND = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
VARIANTS = ("plain", "portal")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Proc:
    """A process seen under the hub: pid, start time (guards against pid reuse), role."""

    pid: int
    start_ticks: int
    role: str


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (its own, not its children's)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _role(cmdline: str) -> str:
    if "aitestbed.portal" in cmdline:
        return "portal"
    if "jupyterhub_idle_culler" in cmdline:
        return "culler"
    if "configurable-http-proxy" in cmdline:
        return "proxy"
    if "jupyterhub-singleuser" in cmdline:
        return "singleuser"
    return "other"


def descendants(root: int) -> list[Proc]:
    """Every live process below ``root`` (JupyterHub starts its children in new sessions,
    so they are not in the hub's process group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[Proc] = []
    queue = list(children.get(root, []))
    while queue:
        pid = queue.pop()
        ticks = start_ticks(pid)
        if ticks is not None:
            found.append(Proc(pid, ticks, _role(_cmdline(pid))))
        queue.extend(children.get(pid, []))
    return found


def alive(proc: Proc) -> bool:
    return start_ticks(proc.pid) == proc.start_ticks


def sweep(procs: list[Proc], grace: float = 10.0) -> list[Proc]:
    """Stop processes the hub left behind (by pid, checked against their start time).

    Returns the ones that were still running when the sweep began.
    """
    left = [p for p in {p.pid: p for p in procs}.values() if alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in left:
            if not alive(proc):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(proc.pid) == proc.pid:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(proc.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in left):
            time.sleep(0.2)
    return left


def memory(hub_pid: int) -> dict[str, Any]:
    """RSS (MiB) of the hub and of each kind of process below it."""
    procs = descendants(hub_pid)
    by_role: dict[str, float] = {}
    counts: dict[str, int] = {}
    for proc in procs:
        by_role[proc.role] = by_role.get(proc.role, 0.0) + rss_mib(proc.pid)
        counts[proc.role] = counts.get(proc.role, 0) + 1
    hub = rss_mib(hub_pid)
    portal = by_role.get("portal", 0.0)
    culler = by_role.get("culler", 0.0)
    return {
        "hub_mib": round(hub, 1),
        "portal_mib": round(portal, 1),
        "culler_mib": round(culler, 1),
        "hub_portal_culler_mib": round(hub + portal + culler, 1),
        "proxy_mib": round(by_role.get("proxy", 0.0), 1),
        "singleuser_total_mib": round(by_role.get("singleuser", 0.0), 1),
        "process_counts": counts,
    }


# --------------------------------------------------------------------------- hubs


@dataclass
class Hub:
    """A running hub, whichever variant: what the measurement needs to know about it."""

    variant: str
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


PLAIN_CONFIG = """\
# Plain JupyterHub for bench/spawn_bench.py: written by the benchmark, no portal, no culler.
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = {bind_url!r}
c.JupyterHub.hub_bind_url = {hub_bind_url!r}
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = {cookie_secret_file!r}
c.JupyterHub.pid_file = {pid_file!r}
c.ConfigurableHTTPProxy.api_url = {proxy_api_url!r}
c.ConfigurableHTTPProxy.command = {proxy_command!r}
c.ConfigurableHTTPProxy.pid_file = {proxy_pid_file!r}
c.ConfigurableHTTPProxy.auth_token = {proxy_token!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {allowed_users!r}
c.JupyterHub.spawner_class = "aitestbed.hub.local_spawner.PortalLocalSpawner"
c.PortalLocalSpawner.home_dir_template = {home_dir_template!r}
c.Spawner.cmd = {cmd!r}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = {timeout!r}
c.Spawner.http_timeout = {timeout!r}
c.Spawner.args = {args!r}
"""


def plain_config(workdir: Path, users: dict[str, str], timeout: int) -> tuple[Path, str]:
    """Write the plain hub's jupyterhub_config.py; returns it and the public URL."""
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    bind_url = f"http://127.0.0.1:{free_port()}"
    text = PLAIN_CONFIG.format(
        bind_url=bind_url,
        hub_bind_url=f"http://127.0.0.1:{free_port()}",
        db_url=f"sqlite:///{state / 'jupyterhub.sqlite'}",
        cookie_secret_file=str(state / "jupyterhub_cookie_secret"),
        pid_file=str(state / "jupyterhub.pid"),
        proxy_api_url=f"http://127.0.0.1:{free_port()}",
        proxy_command=[str(PROXY_COMMAND)],
        proxy_pid_file=str(state / "proxy.pid"),
        proxy_token=secrets.token_hex(32),
        allowed_users=sorted(users),
        home_dir_template=str(state / "homes" / "{username}"),
        cmd=[str(VENV_BIN / "jupyterhub-singleuser")],
        timeout=timeout,
        args=["--allow-root"] if os.geteuid() == 0 else [],
    )
    path = workdir / "jupyterhub_config.py"
    path.write_text(text)
    return path, bind_url


@contextlib.contextmanager
def running_plain(workdir: Path, users: dict[str, str], timeout: int) -> Iterator[Hub]:
    workdir.mkdir(parents=True, exist_ok=True)
    config, url = plain_config(workdir, users, timeout)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITESTBED_", "CONFIGPROXY"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    log_path = workdir / "hub.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = Hub("plain", url, process, log_path)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the plain hub exited early:\n{hub.log_tail()}")
            return requests.get(f"{url}/hub/health", timeout=2).status_code == 200

        wait_until(ready, timeout=60, what="plain hub")
        yield hub
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_portal_hub(workdir: Path, users: dict[str, str], timeout: int) -> Iterator[Hub]:
    with running_portal(workdir, users, session_start_timeout_seconds=timeout) as portal:
        yield Hub("portal", portal.url, portal.process, portal.log_path)


STARTERS: dict[str, Callable[[Path, dict[str, str], int], contextlib.AbstractContextManager]] = {
    "plain": running_plain,
    "portal": running_portal_hub,
}


# --------------------------------------------------------------------------- one user


@dataclass
class UserRun:
    name: str
    login_s: float | None = None
    post_status: int | None = None
    post_s: float | None = None
    ready_s: float | None = None
    polls: int = 0
    error: str | None = None
    session: requests.Session | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("session")
        data.pop("token")
        return data


def login(url: str, run: UserRun, password: str) -> None:
    """Log in through the form (with _xsrf, as a browser does) and make an API token."""
    began = time.monotonic()
    session = requests.Session()
    page = session.get(f"{url}/hub/login", timeout=60)
    page.raise_for_status()
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
    if not xsrf:
        raise RuntimeError("the login form has no _xsrf token")
    response = session.post(
        f"{url}/hub/login?next=",
        data={"username": run.name, "password": password, "_xsrf": xsrf.group(1)},
        allow_redirects=False,
        timeout=60,
    )
    if response.status_code != 302:
        raise RuntimeError(f"login of {run.name} failed: {response.status_code}")
    session.headers["X-XSRFToken"] = session.cookies.get("_xsrf", "")
    token = session.post(
        f"{url}/hub/api/users/{run.name}/tokens",
        json={"note": "spawn benchmark", "expires_in": 3600},
        timeout=60,
    )
    if token.status_code != 201:
        raise RuntimeError(f"token for {run.name}: {token.status_code} {token.text[:200]}")
    run.session, run.token = session, token.json()["token"]
    run.login_s = time.monotonic() - began


def server_gone(url: str, run: UserRun) -> bool:
    assert run.session is not None
    model = run.session.get(f"{url}/hub/api/users/{run.name}", timeout=30).json()
    return "" not in model.get("servers", {})


def start_and_wait(
    url: str, run: UserRun, barrier: threading.Barrier, timeout: float, interval: float
) -> None:
    """Start the server when everyone is ready, then poll its status through the proxy."""
    assert run.session is not None
    barrier.wait(timeout=120)
    began = time.monotonic()
    deadline = began + timeout
    try:
        response = run.session.post(f"{url}/hub/api/users/{run.name}/server", timeout=timeout)
    except requests.RequestException as error:
        run.error = f"start request: {error}"
        return
    run.post_s = time.monotonic() - began
    run.post_status = response.status_code
    if response.status_code not in (201, 202):
        run.error = f"start request: {response.status_code} {response.text[:200]}"
        return
    client = requests.Session()  # no hub cookies: an API client with the user's token
    client.headers["Authorization"] = f"token {run.token}"
    status_url = f"{url}/user/{run.name}/api/status"
    while time.monotonic() < deadline:
        run.polls += 1
        try:
            answer = client.get(status_url, timeout=10, allow_redirects=False)
            if answer.status_code == 200 and "started" in answer.json():
                run.ready_s = time.monotonic() - began
                return
            # 424: the hub says the server is not running, after it accepted the start.
            if answer.status_code == 424 and server_gone(url, run):
                run.error = "server stopped before it was ready (spawn failed)"
                return
        except (requests.RequestException, ValueError):
            pass  # not up yet
        time.sleep(interval)
    run.error = f"not ready after {timeout:.0f} s"


def stop_servers(url: str, runs: list[UserRun], timeout: float = 180) -> list[str]:
    """Stop every started server through the hub API; returns users whose stop timed out."""
    started = [r for r in runs if r.session is not None and r.post_status in (201, 202)]

    def stop(run: UserRun) -> None:
        assert run.session is not None
        with contextlib.suppress(requests.RequestException):
            run.session.delete(f"{url}/hub/api/users/{run.name}/server", timeout=60)

    if started:
        with ThreadPoolExecutor(max_workers=len(started)) as pool:
            list(pool.map(stop, started))
    deadline = time.monotonic() + timeout
    pending = list(started)
    while pending and time.monotonic() < deadline:
        still = []
        for run in pending:
            try:
                if not server_gone(url, run):
                    still.append(run)
            except (requests.RequestException, ValueError):
                still.append(run)
        pending = still
        if pending:
            time.sleep(1)
    return [r.name for r in pending]


# --------------------------------------------------------------------------- one variant


def percentile(values: list[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = pct / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def run_variant(variant: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    users = {f"bench{i:02d}": f"pw-{secrets.token_hex(6)}" for i in range(1, args.users + 1)}
    runs = [UserRun(name) for name in users]
    seen: list[Proc] = []
    result: dict[str, Any] = {
        "variant": variant,
        "users": args.users,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"[{variant}] starting the hub in {workdir}", flush=True)
    hub_ref: Hub | None = None
    try:
        with STARTERS[variant](workdir, users, args.timeout) as hub:
            hub_ref = hub
            hub_pid = hub.process.pid
            time.sleep(args.settle)
            result["memory_idle"] = memory(hub_pid)
            seen += descendants(hub_pid)

            with ThreadPoolExecutor(max_workers=args.users) as pool:
                logins = [pool.submit(login, hub.url, run, users[run.name]) for run in runs]
                for run, future in zip(runs, logins, strict=True):
                    with contextlib.suppress(Exception):
                        future.result(timeout=300)
                    if future.done() and future.exception():
                        run.error = f"login: {future.exception()}"
            ready = [run for run in runs if run.session is not None]
            print(f"[{variant}] {len(ready)}/{len(runs)} logged in; starting servers", flush=True)

            cpu_before = {"hub": cpu_seconds(hub_pid)}
            services = {p.role: p.pid for p in descendants(hub_pid) if p.role != "singleuser"}
            for role, pid in services.items():
                cpu_before[role] = cpu_seconds(pid)
            began = time.monotonic()
            if ready:
                barrier = threading.Barrier(len(ready) + 1)
                with ThreadPoolExecutor(max_workers=len(ready)) as pool:
                    futures = [
                        pool.submit(
                            start_and_wait, hub.url, run, barrier, args.timeout, args.poll_interval
                        )
                        for run in ready
                    ]
                    barrier.wait(timeout=120)
                    for run, future in zip(ready, futures, strict=True):
                        try:
                            future.result(timeout=args.timeout + 120)
                        except Exception as error:
                            run.error = run.error or f"{type(error).__name__}: {error}"
            result["wall_s"] = round(time.monotonic() - began, 2)
            result["memory_all_started"] = memory(hub_pid)
            result["loadavg_all_started"] = [round(x, 2) for x in os.getloadavg()]
            cpu = {"hub": cpu_seconds(hub_pid) - cpu_before["hub"]}
            for role, pid in services.items():
                cpu[role] = cpu_seconds(pid) - cpu_before[role]
            # The servers (and anything they started) began in this phase: all their CPU.
            cpu["singleuser_total"] = sum(
                cpu_seconds(p.pid)
                for p in descendants(hub_pid)
                if p.role in ("singleuser", "other")
            )
            result["cpu_s_during_start"] = {k: round(v, 2) for k, v in cpu.items()}
            seen += descendants(hub_pid)
            print(f"[{variant}] all done in {result['wall_s']} s; stopping servers", flush=True)
            result["stop_timed_out"] = stop_servers(hub.url, runs)
            seen += descendants(hub_pid)
            stop_began = time.monotonic()
        # Stopped by the context manager: SIGTERM to the hub, SIGKILL after 20 s.
        result["hub_stop_s"] = round(time.monotonic() - stop_began, 2)
        result["hub_exit_code"] = hub.process.returncode
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        if hub_ref is not None:
            result["hub_log_tail"] = hub_ref.log_tail()
    finally:
        result["leftover_processes"] = [asdict(p) for p in sweep(seen)]

    times = [r.ready_s for r in runs if r.ready_s is not None]
    result["time_to_ready_s"] = {
        "p50": _round(percentile(times, 50)),
        "p95": _round(percentile(times, 95)),
        "min": _round(min(times, default=None)),
        "max": _round(max(times, default=None)),
        "mean": _round(sum(times) / len(times) if times else None),
    }
    logins = [r.login_s for r in runs if r.login_s is not None]
    result["login_s_p50"] = _round(percentile(logins, 50))
    result["ready"] = len(times)
    result["failures"] = len(runs) - len(times)
    result["per_user"] = [r.record() for r in runs]
    for run in runs:
        if run.error:
            print(f"[{variant}] {run.name}: {run.error}", flush=True)
    return result


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    total_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    try:
        from jupyterhub import __version__ as jupyterhub_version
    except ImportError:  # pragma: no cover
        jupyterhub_version = "?"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "mem_total_gib": round(total_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "jupyterhub": jupyterhub_version,
        "euid": os.geteuid(),
    }


ROWS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("time-to-ready p50 (s)", lambda r: r["time_to_ready_s"]["p50"]),
    ("time-to-ready p95 (s)", lambda r: r["time_to_ready_s"]["p95"]),
    ("time-to-ready max (s)", lambda r: r["time_to_ready_s"]["max"]),
    ("failures", lambda r: r["failures"]),
    ("wall time, all ready (s)", lambda r: r.get("wall_s")),
    ("hub RSS (MiB)", lambda r: _mem(r, "hub_mib")),
    ("portal service RSS (MiB)", lambda r: _mem(r, "portal_mib")),
    ("idle culler RSS (MiB)", lambda r: _mem(r, "culler_mib")),
    ("hub+portal+culler RSS (MiB)", lambda r: _mem(r, "hub_portal_culler_mib")),
    ("proxy RSS (MiB)", lambda r: _mem(r, "proxy_mib")),
    ("single-user servers RSS (MiB)", lambda r: _mem(r, "singleuser_total_mib")),
    ("hub RSS before logins (MiB)", lambda r: r.get("memory_idle", {}).get("hub_mib")),
    ("hub CPU during start (s)", lambda r: r.get("cpu_s_during_start", {}).get("hub")),
    (
        "single-user servers CPU (s)",
        lambda r: r.get("cpu_s_during_start", {}).get("singleuser_total"),
    ),
]


def _mem(result: dict[str, Any], key: str) -> Any:
    return result.get("memory_all_started", {}).get(key)


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    if not set(VARIANTS) <= set(results):
        return {}
    out = {}
    for label, get in ROWS:
        plain, portal = get(results["plain"]), get(results["portal"])
        ok = isinstance(plain, int | float) and isinstance(portal, int | float) and plain
        out[label] = round(portal / plain, 3) if ok else None
    return out


def table(results: dict[str, dict[str, Any]], ratio: dict[str, float | None]) -> str:
    names = [v for v in VARIANTS if v in results]
    header = f"{'metric':<32}" + "".join(f"{n:>10}" for n in names)
    if ratio:
        header += f"{'portal/plain':>14}"
    lines = [header, "-" * len(header)]
    for label, get in ROWS:
        line = f"{label:<32}" + "".join(f"{_fmt(get(results[n])):>10}" for n in names)
        if ratio:
            line += f"{_fmt(ratio[label], ratio=True):>14}"
        lines.append(line)
    return "\n".join(lines)


def _fmt(value: Any, ratio: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}x" if ratio else f"{value:.1f}"
    return str(value)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument(
        "--order",
        default="plain,portal",
        help="variants to run, in order: plain,portal (default), portal,plain, or one of them",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=300,
        help="seconds a server may take to become ready; also the spawner's start_timeout "
        "and http_timeout in both variants (default 300)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between status polls"
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds to wait after a hub is up"
    )
    parser.add_argument(
        "--pause", type=float, default=5.0, help="seconds of quiet between the variants"
    )
    parser.add_argument("--workdir", type=Path, help="keep hub state and logs here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.order = [v.strip() for v in args.order.split(",") if v.strip()]
    if not args.order or any(v not in VARIANTS for v in args.order):
        parser.error("--order takes plain and/or portal, comma separated")
    if args.users < 1:
        parser.error("--users must be at least 1")
    if not 10 <= args.timeout <= 3600:
        parser.error("--timeout must be between 10 and 3600 (the settings schema's range)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not PROXY_COMMAND.exists():
        print(f"{PROXY_COMMAND} is missing: run `make setup` first.", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="spawn-bench-"))
    results: dict[str, dict[str, Any]] = {}
    for index, variant in enumerate(args.order):
        if index:
            time.sleep(args.pause)
        results[variant] = run_variant(variant, root / variant, args)
    ratio = ratios(results)
    report = {
        "benchmark": "spawn",
        "timestamp": stamp,
        "command": " ".join([_shown(Path(sys.executable)), *sys.argv]),
        "machine": machine(),
        "settings": {
            "users": args.users,
            "order": args.order,
            "timeout_s": args.timeout,
            "poll_interval_s": args.poll_interval,
            "ready_when": "GET /user/<name>/api/status through the proxy answers 200 "
            "(token auth) with a 'started' field",
        },
        "variants": results,
        "ratios_portal_over_plain": ratio,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"spawn-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(
        f"{args.users} users, {report['machine']['nproc']} CPUs, "
        f"{report['machine']['mem_total_gib']} GiB"
    )
    print(table(results, ratio))
    print(f"\nJSON: {out}")
    failed = any(r.get("error") or r["failures"] for r in results.values())
    untidy = any(r.get("leftover_processes") for r in results.values())
    if args.workdir is None:
        if failed or untidy:
            print(f"Hub logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    for variant, result in results.items():
        if result.get("error"):
            print(f"[{variant}] {result['error']}\n{result.get('hub_log_tail', '')}")
        if result.get("leftover_processes"):
            roles = ", ".join(p["role"] for p in result["leftover_processes"])
            print(
                f"[{variant}] the hub left processes running ({roles}); the benchmark stopped "
                f"them (hub exit code {result.get('hub_exit_code')}, "
                f"stop took {result.get('hub_stop_s')} s)"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
