"""Spawn benchmark: the portal's embedded default against plain JupyterHub, in one run.

N users log in and then start their servers at the same moment. For every user the time is
measured from the start request (``POST /hub/api/users/<name>/server``) until the server
answers ``GET /user/<name>/api/status`` through the proxy with 200, authenticated with the
user's API token. After all servers are up (or have failed) the resident memory of the hub,
the portal service, the idle culler and the proxy is read from ``/proc``.

Variants, same single-user command (JupyterLab via jupyterhub-singleuser), same timeouts,
same home folder scheme:

* ``plain``: JupyterHub with DummyAuthenticator and SimpleLocalProcessSpawner (the class
  PortalLocalSpawner builds on), no services; config written by bench/_common.py.
* ``portal``: the embedded default (hub_config/jupyterhub_config.py + settings, with the
  bench users as members of acme-vision and the cpu-small capacity raised to N):
  DemoAuthenticator, PortalLocalSpawner (admission, start queue), portal service, culler.

Usage: ``.venv/bin/python bench/spawn_bench.py [--users 20] [--order plain,portal]``.
Results: a table on stdout and JSON in bench/results/spawn-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    PROXY_COMMAND,
    RESULTS_DIR,
    Hub,
    Proc,
    UserRun,
    _round,
    cpu_seconds,
    descendants,
    login,
    machine,
    percentile,
    running_plain,
    running_portal,
    start_and_wait,
    stop_servers,
    sweep,
)
from _common import shown as _shown

VARIANTS = ("plain", "portal")


# --------------------------------------------------------------------------- memory


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


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


def running_plain_hub(workdir: Path, users: dict[str, str], timeout: int):
    return running_plain("plain", workdir, users, timeout)


def running_portal_hub(workdir: Path, users: dict[str, str], timeout: int):
    return running_portal("portal", workdir, users, session_start_timeout_seconds=timeout)


STARTERS: dict[
    str, Callable[[Path, dict[str, str], int], contextlib.AbstractContextManager[Hub]]
] = {
    "plain": running_plain_hub,
    "portal": running_portal_hub,
}


# --------------------------------------------------------------------------- one variant


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
                            start_and_wait, hub, run, barrier, args.timeout, args.poll_interval
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


# --------------------------------------------------------------------------- report


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
