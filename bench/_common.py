"""Shared parts of the start benchmarks (policy_bench.py, storm_bench.py).

What every benchmark here needs: start a hub (plain JupyterHub with a given spawner, or the
portal's embedded default with bench users and settings), log N users in, start all their
servers at the same moment, time each one until it answers through the proxy, find out when
each server process was launched, and stop everything that was started, by pid.

The helpers follow bench/spawn_bench.py (on main); they live here so that each benchmark
script only says which variants it compares.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aitestbed.hub.demo import _default_signals  # noqa: E402
from aitestbed.settings import SETTINGS_ENV  # noqa: E402

from tests.harness import HUB_CONFIG, VENV_BIN, free_port, test_settings, wait_until  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
PROXY_COMMAND = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PORTAL_PROJECT = "acme-vision"
PORTAL_CHOICE = {"project": PORTAL_PROJECT, "flavor": "cpu-small", "image": "python-cpu"}


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


def server_users(procs: list[Proc]) -> dict[str, Proc]:
    """Single-user server processes by their $JUPYTERHUB_USER."""
    found = {}
    for proc in procs:
        if proc.role != "singleuser":
            continue
        try:
            environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"JUPYTERHUB_USER="):
                found[item.split(b"=", 1)[1].decode()] = proc
    return found


def boottime() -> float:
    """Seconds since boot on the clock /proc/<pid>/stat's start time uses."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def stop_hub(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the hub (it stops its servers, services and proxy), SIGKILL after
    ``timeout`` to its process group; what it started elsewhere is swept by pid."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# --------------------------------------------------------------------------- hubs


@dataclass
class Hub:
    """A running hub, whichever variant: what the measurement needs to know about it."""

    variant: str
    url: str
    process: subprocess.Popen
    log_path: Path
    start_body: dict[str, str] | None = None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


PLAIN_CONFIG = """\
# Plain JupyterHub written by a benchmark in bench/: no portal, no services.
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
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = {home_dir_template!r}
c.Spawner.cmd = {cmd!r}
c.Spawner.default_url = "/lab"
c.Spawner.args = {args!r}
"""


def singleuser_args() -> list[str]:
    return ["--allow-root"] if os.geteuid() == 0 else []


@contextlib.contextmanager
def running_plain(
    variant: str, workdir: Path, users: dict[str, str], timeout: int | None
) -> Iterator[Hub]:
    """Plain JupyterHub, DummyAuthenticator, SimpleLocalProcessSpawner with the portal's
    command, arguments and home folder scheme. ``timeout``: the spawner's start_timeout and
    http_timeout; None keeps JupyterHub's defaults (60 s and 30 s)."""
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{free_port()}"
    text = PLAIN_CONFIG.format(
        bind_url=url,
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
        args=singleuser_args(),
    )
    if timeout is not None:
        text += f"c.Spawner.start_timeout = {timeout!r}\nc.Spawner.http_timeout = {timeout!r}\n"
    config = workdir / "jupyterhub_config.py"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AITESTBED_", "CONFIGPROXY"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    yield from _run_hub(variant, workdir, [str(config)], env, url, None, portal=False)


PORTAL_OVERRIDES = """\
# The portal's own configuration, then what the benchmark changes (written by bench/).
c = get_config()  # noqa: F821
load_subconfig({hub_config!r})  # noqa: F821
"""


def portal_settings(state_dir: Path, users: dict[str, str], **site: object) -> dict:
    """The embedded default for ``users``: all of them members of acme-vision, and the
    cpu-small flavor's capacity (sessions that fit on this machine) raised to their number,
    so that no start is refused for capacity."""
    doc = test_settings(state_dir, users, **site)
    for flavor in doc["flavors"]:
        if flavor["slug"] == PORTAL_CHOICE["flavor"]:
            flavor["capacity"] = max(len(users), flavor.get("capacity") or 0)
    for project in doc["projects"]:
        if project["slug"] == PORTAL_PROJECT:
            project["members"] += [{"user": name} for name in users]
    return doc


@contextlib.contextmanager
def running_portal(
    variant: str,
    workdir: Path,
    users: dict[str, str],
    *,
    start_slots: int | None = None,
    **site: object,
) -> Iterator[Hub]:
    """The embedded default (hub_config/jupyterhub_config.py) with bench settings.

    ``start_slots`` overrides PolicySpawnerMixin.start_slots (None: the shipped default, one
    per CPU core); ``site`` overrides site settings (e.g. session_start_timeout_seconds).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    settings_path = workdir / "settings.yaml"
    doc = portal_settings(workdir / "state", users, **site)
    settings_path.write_text(yaml.safe_dump(doc))
    config = HUB_CONFIG
    if start_slots is not None:
        config = workdir / "jupyterhub_config.py"
        config.write_text(
            PORTAL_OVERRIDES.format(hub_config=str(HUB_CONFIG))
            + f"c.PolicySpawnerMixin.start_slots = {start_slots!r}\n"
        )
    env = {**os.environ, SETTINGS_ENV: str(settings_path)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    url = doc["site"]["bind_url"].rstrip("/")
    yield from _run_hub(variant, workdir, [str(config)], env, url, PORTAL_CHOICE, portal=True)


def _run_hub(
    variant: str,
    workdir: Path,
    config: list[str],
    env: dict[str, str],
    url: str,
    start_body: dict[str, str] | None,
    *,
    portal: bool,
) -> Iterator[Hub]:
    log_path = workdir / "hub.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", *config],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    hub = Hub(variant, url, process, log_path, start_body)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the {variant} hub exited early:\n{hub.log_tail()}")
            if requests.get(f"{url}/hub/health", timeout=2).status_code != 200:
                return False
            if portal:
                health = requests.get(f"{url}/services/portal/api/health", timeout=2)
                return health.status_code == 200
            return True

        wait_until(ready, timeout=90, what=f"{variant} hub")
        yield hub
    finally:
        stop_hub(process)


# --------------------------------------------------------------------------- one user


@dataclass
class UserRun:
    name: str
    login_s: float | None = None
    post_status: int | None = None
    post_s: float | None = None
    launch_s: float | None = None  # start request -> server process exists
    ready_s: float | None = None  # start request -> answers through the proxy
    polls: int = 0
    error: str | None = None
    began_boot: float | None = field(default=None, repr=False)
    session: requests.Session | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("session", "token", "began_boot"):
            data.pop(key)
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
        json={"note": "start benchmark", "expires_in": 3600},
        timeout=60,
    )
    if token.status_code != 201:
        raise RuntimeError(f"token for {run.name}: {token.status_code} {token.text[:200]}")
    run.session, run.token = session, token.json()["token"]
    run.login_s = time.monotonic() - began


def server_gone(url: str, run: UserRun) -> bool:
    """True only when the hub answers that the user has no default server (any other
    answer, an error included, means "do not know yet")."""
    assert run.session is not None
    answer = run.session.get(f"{url}/hub/api/users/{run.name}", timeout=30)
    if answer.status_code != 200:
        return False
    servers = answer.json().get("servers")
    return isinstance(servers, dict) and "" not in servers


def start_and_wait(
    hub: Hub, run: UserRun, barrier: threading.Barrier, timeout: float, interval: float
) -> None:
    """Start the server when everyone is ready, then poll its status through the proxy."""
    assert run.session is not None
    url = hub.url
    barrier.wait(timeout=120)
    began = time.monotonic()
    run.began_boot = boottime()
    deadline = began + timeout
    try:
        response = run.session.post(
            f"{url}/hub/api/users/{run.name}/server", json=hub.start_body, timeout=timeout
        )
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
            # Not (yet) routed to the server: the proxy sends the request to the hub, which
            # redirects (302) or answers 424/503. Once the hub has given up on the start,
            # the user has no server any more: ask the hub every few polls.
            if run.polls % 4 == 0 and server_gone(url, run):
                run.error = "the hub gave up on the start (server gone before it was ready)"
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


def summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": _round(percentile(values, 50)),
        "p95": _round(percentile(values, 95)),
        "min": _round(min(values, default=None)),
        "max": _round(max(values, default=None)),
        "mean": _round(sum(values) / len(values) if values else None),
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def run_variant(
    variant: str,
    starter: Callable[[str, Path, dict[str, str]], contextlib.AbstractContextManager[Hub]],
    workdir: Path,
    users_count: int,
    *,
    wait_s: float,
    poll_interval: float = 0.5,
    describe: str = "",
) -> dict[str, Any]:
    """Log ``users_count`` users in, start all servers at once, measure, stop everything.

    ``wait_s`` bounds the benchmark's own wait for each server (not the hub's timeouts).
    """
    users = {f"bench{i:02d}": f"pw-{secrets.token_hex(6)}" for i in range(1, users_count + 1)}
    runs = [UserRun(name) for name in users]
    seen: list[Proc] = []
    result: dict[str, Any] = {
        "variant": variant,
        "what": describe,
        "users": users_count,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"[{variant}] load {result['loadavg_before']}; starting the hub in {workdir}", flush=True)
    hub_ref: Hub | None = None
    try:
        with starter(variant, workdir, users) as hub:
            hub_ref = hub
            hub_pid = hub.process.pid
            seen += descendants(hub_pid)
            with ThreadPoolExecutor(max_workers=min(users_count, 20)) as pool:
                logins = [pool.submit(login, hub.url, run, users[run.name]) for run in runs]
                for run, future in zip(runs, logins, strict=True):
                    try:
                        future.result(timeout=300)
                    except Exception as error:
                        run.error = f"login: {error}"
            ready = [run for run in runs if run.session is not None]
            print(f"[{variant}] {len(ready)}/{len(runs)} logged in; starting servers", flush=True)
            services = {p.role: p.pid for p in descendants(hub_pid) if p.role != "singleuser"}
            cpu_before = {"hub": cpu_seconds(hub_pid)}
            cpu_before |= {role: cpu_seconds(pid) for role, pid in services.items()}
            result["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
            began = time.monotonic()
            if ready:
                barrier = threading.Barrier(len(ready) + 1)
                with ThreadPoolExecutor(max_workers=len(ready)) as pool:
                    futures = [
                        pool.submit(start_and_wait, hub, run, barrier, wait_s, poll_interval)
                        for run in ready
                    ]
                    barrier.wait(timeout=120)
                    for run, future in zip(ready, futures, strict=True):
                        try:
                            future.result(timeout=wait_s + 120)
                        except Exception as error:
                            run.error = run.error or f"{type(error).__name__}: {error}"
            result["wall_s"] = round(time.monotonic() - began, 2)
            procs = descendants(hub_pid)
            seen += procs
            for name, proc in server_users(procs).items():
                run = next((r for r in runs if r.name == name), None)
                if run is not None and run.began_boot is not None:
                    run.launch_s = round(proc.start_ticks / CLOCK_TICKS - run.began_boot, 2)
            cpu = {"hub": cpu_seconds(hub_pid) - cpu_before["hub"]}
            cpu |= {role: cpu_seconds(pid) - cpu_before[role] for role, pid in services.items()}
            cpu["singleuser_total"] = sum(
                cpu_seconds(p.pid) for p in procs if p.role in ("singleuser", "other")
            )
            result["cpu_s_during_start"] = {k: round(v, 2) for k, v in cpu.items()}
            result["loadavg_all_done"] = [round(x, 2) for x in os.getloadavg()]
            print(f"[{variant}] all done in {result['wall_s']} s; stopping servers", flush=True)
            result["stop_timed_out"] = stop_servers(hub.url, runs)
            seen += descendants(hub_pid)
        result["hub_exit_code"] = hub.process.returncode
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        if hub_ref is not None:
            result["hub_log_tail"] = hub_ref.log_tail()
    finally:
        result["leftover_processes"] = [asdict(p) for p in sweep(seen)]

    ready_times = [r.ready_s for r in runs if r.ready_s is not None]
    launched = [r for r in runs if r.ready_s is not None and r.launch_s is not None]
    result["time_to_ready_s"] = summary(ready_times)
    # Where the time went, for servers that became ready: before the process existed (hub,
    # admission, queue) and after (the server's own start-up, then the hub's check + proxy).
    result["time_to_launch_s"] = summary([r.launch_s for r in launched])
    result["launch_to_ready_s"] = summary([r.ready_s - r.launch_s for r in launched])
    result["ready"] = len(ready_times)
    result["failures"] = len(runs) - len(ready_times)
    result["errors"] = sorted({r.error for r in runs if r.error})
    result["per_user"] = [r.record() for r in runs]
    for run in runs:
        if run.error:
            print(f"[{variant}] {run.name}: {run.error}", flush=True)
    return result


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


Row = tuple[str, Callable[[dict[str, Any]], Any]]

COMMON_ROWS: list[Row] = [
    ("failures", lambda r: r["failures"]),
    ("time-to-ready p50 (s)", lambda r: r["time_to_ready_s"]["p50"]),
    ("time-to-ready p95 (s)", lambda r: r["time_to_ready_s"]["p95"]),
    ("time-to-ready max (s)", lambda r: r["time_to_ready_s"]["max"]),
    ("time-to-ready min (s)", lambda r: r["time_to_ready_s"]["min"]),
    ("request -> process p50 (s)", lambda r: r["time_to_launch_s"]["p50"]),
    ("process -> ready p50 (s)", lambda r: r["launch_to_ready_s"]["p50"]),
    ("wall time, all done (s)", lambda r: r.get("wall_s")),
    ("hub CPU during starts (s)", lambda r: r.get("cpu_s_during_start", {}).get("hub")),
    ("portal CPU during starts (s)", lambda r: r.get("cpu_s_during_start", {}).get("portal")),
    ("servers CPU (s)", lambda r: r.get("cpu_s_during_start", {}).get("singleuser_total")),
    ("load avg 1 min at start", lambda r: (r.get("loadavg_at_start") or [None])[0]),
]


def ratios(
    results: dict[str, dict[str, Any]], numerator: str, denominator: str, rows: list[Row]
) -> dict[str, float | None]:
    if numerator not in results or denominator not in results:
        return {}
    out = {}
    for label, get in rows:
        top, bottom = get(results[numerator]), get(results[denominator])
        ok = isinstance(top, int | float) and isinstance(bottom, int | float) and bottom
        out[label] = round(top / bottom, 3) if ok else None
    return out


def table(
    results: dict[str, dict[str, Any]],
    rows: list[Row],
    ratio_columns: dict[str, dict[str, float | None]],
) -> str:
    names = list(results)
    width = max(12, *(len(n) + 2 for n in names))
    header = f"{'metric':<30}" + "".join(f"{n:>{width}}" for n in names)
    header += "".join(f"{k:>{max(len(k) + 2, 10)}}" for k in ratio_columns)
    lines = [header, "-" * len(header)]
    for label, get in rows:
        line = f"{label:<30}" + "".join(f"{_fmt(get(results[n])):>{width}}" for n in names)
        for key, ratio in ratio_columns.items():
            line += f"{_fmt(ratio.get(label), ratio=True):>{max(len(key) + 2, 10)}}"
        lines.append(line)
    return "\n".join(lines)


def _fmt(value: Any, ratio: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}x" if ratio else f"{value:.1f}"
    return str(value)


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def write_report(report: dict[str, Any], results_dir: Path, name: str) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / f"{name}-{report['timestamp']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def proxy_missing() -> bool:
    if PROXY_COMMAND.exists():
        return False
    print(f"{PROXY_COMMAND} is missing: run `make setup` first.", file=sys.stderr)
    return True


# --------------------------------------------------------------------------- main


Starter = Callable[[str, Path, dict[str, str]], contextlib.AbstractContextManager[Hub]]


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    starter: Starter


def run_benchmark(
    name: str,
    variants: dict[str, Variant],
    order: list[str],
    ratio_pairs: list[tuple[str, str]],
    args: Any,
    settings: dict[str, Any],
) -> int:
    """Run ``order``'s variants one after the other, print the table, write the JSON."""
    import shutil
    import tempfile
    from datetime import UTC, datetime

    if proxy_missing():
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = args.workdir or Path(tempfile.mkdtemp(prefix=f"{name}-bench-"))
    results: dict[str, dict[str, Any]] = {}
    for index, key in enumerate(order):
        if index:
            time.sleep(args.pause)
        variant = variants[key]
        results[key] = run_variant(
            key,
            variant.starter,
            root / key,
            args.users,
            wait_s=args.wait,
            poll_interval=args.poll_interval,
            describe=variant.what,
        )
    rows = COMMON_ROWS
    ratio_columns = {f"{a}/{b}": ratios(results, a, b, rows) for a, b in ratio_pairs}
    ratio_columns = {k: v for k, v in ratio_columns.items() if v}
    report = {
        "benchmark": name,
        "timestamp": stamp,
        "command": " ".join([shown(Path(sys.executable)), *sys.argv]),
        "machine": machine(),
        "settings": {
            "users": args.users,
            "order": order,
            "wait_s": args.wait,
            "poll_interval_s": args.poll_interval,
            "ready_when": "GET /user/<name>/api/status through the proxy answers 200 "
            "(token auth) with a 'started' field",
            **settings,
        },
        "variants": results,
        "ratios": ratio_columns,
    }
    out = write_report(report, args.results_dir, name)
    print()
    info = report["machine"]
    print(f"{args.users} simultaneous starts, {info['nproc']} CPUs, {info['mem_total_gib']} GiB")
    print(table(results, rows, ratio_columns))
    print(f"\nJSON: {out}")
    broken = any(r.get("error") for r in results.values())
    untidy = any(r.get("leftover_processes") for r in results.values())
    failed = any(r["failures"] for r in results.values())
    if args.workdir is None:
        if broken or untidy or failed:
            print(f"Hub logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    for key, result in results.items():
        if result.get("error"):
            print(f"[{key}] {result['error']}\n{result.get('hub_log_tail', '')}")
        if result.get("leftover_processes"):
            roles = ", ".join(p["role"] for p in result["leftover_processes"])
            print(f"[{key}] the hub left processes running ({roles}); the benchmark stopped them")
    return 1 if broken else 0


def common_arguments(parser: Any, users: int, order: str) -> None:
    parser.add_argument(
        "--users", type=int, default=users, help=f"simultaneous starts (default {users})"
    )
    parser.add_argument(
        "--order", default=order, help=f"variants to run, comma separated (default {order})"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=400,
        help="seconds the benchmark waits for each server before counting it as failed "
        "(its own bound; the hubs' timeouts are part of each variant) (default 400)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between status polls"
    )
    parser.add_argument(
        "--pause", type=float, default=5.0, help="seconds of quiet between the variants"
    )
    parser.add_argument("--workdir", type=Path, help="keep hub state and logs here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)


def parse_order(parser: Any, args: Any, variants: dict[str, Any]) -> list[str]:
    order = [v.strip() for v in args.order.split(",") if v.strip()]
    if not order or any(v not in variants for v in order):
        parser.error(f"--order takes some of: {', '.join(variants)}")
    if args.users < 1:
        parser.error("--users must be at least 1")
    return order
