"""What must hold in a running portal after any fault, read from the outside.

- every running server (the hub's API) has exactly one open usage record (the portal's
  database), and every open record belongs to a running server;
- every local job (a folder in the portal's jobs folder) has exactly one record, every
  record the backend confirmed has its job, and a record the backend never saw is settled;
- exactly one hub, proxy, portal service and idle culler run for this deployment, the
  services children of the current hub; every single-user process belongs to a server the
  hub runs, every job runner and job process to an active job: no orphan;
- every listening port of this deployment's processes is one the deployment uses now (the
  hub's, the proxy's two, the portal's, each running server's): no port left bound.

Processes are found by their command lines and environments (Linux ``/proc``): the
deployment's settings path, its hub's API address, its state folder or a job's mark.
Zombies count as gone.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from aitestbed.portal.db import make_engine
from aitestbed.settings import load_settings
from sqlalchemy import text

from tests.harness import Portal


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    cmdline: tuple[str, ...]
    environ: dict[str, str] = field(hash=False)

    @property
    def command(self) -> str:
        return " ".join(self.cmdline)

    @property
    def kind(self) -> str:
        command = self.command
        if "jupyterhub-singleuser" in command:
            return "server"
        if "configurable-http-proxy" in command:
            return "proxy"
        if "aitestbed.portal.jobs.local_runner" in command:
            return "runner"
        if "aitestbed.portal" in command and "serve" in self.cmdline:
            return "portal"
        if "jupyterhub_idle_culler" in command:
            return "culler"
        if "AITESTBED_LOCAL_JOB" in self.environ:
            return "job"
        if "jupyterhub" in command and "-f" in self.cmdline:
            return "hub"
        return "other"


class Deployment:
    """The hub, proxy and portal of one test deployment, and what it runs."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.settings = load_settings(portal.settings_path)
        self.state = self.settings.site.state_dir
        self.token = (self.state / "portal_api_token").read_text().strip()
        self.engine = make_engine(self.settings.site.database_url)

    # -- the hub's view and the portal's records ----------------------------------------

    def hub_servers(self) -> dict[tuple[str, str], dict]:
        response = requests.get(
            f"{self.portal.hub_api}/users?state=active&limit=200",
            headers={"Authorization": f"token {self.token}"},
            timeout=10,
        )
        response.raise_for_status()
        return {
            (user["name"], name): server
            for user in response.json()
            for name, server in (user.get("servers") or {}).items()
        }

    def open_records(self) -> list[tuple[str, str]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT u.name, s.server_name FROM session_records s "
                    "JOIN users u ON u.id = s.user_id WHERE s.stopped_at IS NULL"
                )
            )
            return [(row[0], row[1]) for row in rows]

    def job_records(self) -> list[dict]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, uid, backend_job_id, state, reason FROM jobs ORDER BY id")
            )
            return [dict(row._mapping) for row in rows]

    def job_folders(self) -> set[str]:
        jobs = self.state / "jobs"
        return {p.name for p in jobs.iterdir() if p.is_dir()} if jobs.is_dir() else set()

    # -- processes and ports ------------------------------------------------------------

    def processes(self) -> list[Proc]:
        settings = str(self.portal.settings_path)
        hub_api = f"127.0.0.1:{self.settings.site.hub_port}/"
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = tuple(
                    part.decode(errors="replace")
                    for part in (entry / "cmdline").read_bytes().split(b"\0")
                    if part
                )
                raw_env = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if state == "Z":
                continue
            environ = dict(
                part.decode(errors="replace").partition("=")[::2] for part in raw_env if part
            )
            ours = (
                environ.get("AITESTBED_SETTINGS") == settings
                or hub_api in environ.get("JUPYTERHUB_API_URL", "")
                or any(str(self.state) in part for part in cmdline)
            )
            if ours and int(entry.name) != os.getpid():
                found.append(Proc(int(entry.name), int(ppid), cmdline, environ))
        return found

    @staticmethod
    def listening_ports(pids: set[int]) -> dict[int, set[int]]:
        """Listening TCP ports of each of ``pids``."""
        inodes: dict[str, int] = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
        ports: dict[int, set[int]] = {}
        for pid in pids:
            try:
                links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
            except OSError:
                continue
            for link in links:
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    ports.setdefault(pid, set()).add(inodes[link[8:-1]])
        return ports

    # -- the invariants -----------------------------------------------------------------

    def violations(self) -> list[str]:
        problems: list[str] = []
        servers = self.hub_servers()
        pending = sorted(k for k, s in servers.items() if s.get("pending"))
        if pending:
            problems.append(f"servers still starting or stopping: {pending}")
        running = {k for k, s in servers.items() if s.get("ready")}
        records = collections.Counter(self.open_records())
        doubled = sorted(k for k, n in records.items() if n > 1)
        if doubled:
            problems.append(f"servers with more than one open usage record: {doubled}")
        if set(records) != running:
            problems.append(
                f"running servers {sorted(running)} != open usage records {sorted(records)}"
            )
        jobs = self.job_records()
        active_jobs = {j["uid"] for j in jobs if j["state"] in ("PENDING", "RUNNING")}
        folders = self.job_folders()
        per_uid = collections.Counter(j["uid"] for j in jobs)
        for folder in sorted(folders):
            if per_uid[folder] != 1:
                problems.append(f"job folder {folder} has {per_uid[folder]} records")
        for job in jobs:
            if job["backend_job_id"] is not None and job["backend_job_id"] not in folders:
                problems.append(f"job record {job['id']} names a job that does not exist")
            if job["backend_job_id"] is None and job["uid"] in active_jobs:
                problems.append(f"job record {job['id']} is still being submitted")
        processes = self.processes()
        by_kind = collections.defaultdict(list)
        for proc in processes:
            by_kind[proc.kind].append(proc)
        hub_pid = self.portal.process.pid
        if [p.pid for p in by_kind["hub"]] != [hub_pid]:
            problems.append(f"hub processes {[p.pid for p in by_kind['hub']]}, not [{hub_pid}]")
        proxy_pid = int((self.state / "proxy.pid").read_text().strip())
        if [p.pid for p in by_kind["proxy"]] != [proxy_pid]:
            problems.append(f"proxy processes {[p.command for p in by_kind['proxy']]}")
        for kind in ("portal", "culler"):
            parents = [p.ppid for p in by_kind[kind]]
            if parents != [hub_pid]:
                problems.append(f"{kind} processes with parents {parents}, not one of the hub")
        server_procs = collections.Counter(
            (p.environ.get("JUPYTERHUB_USER", ""), p.environ.get("JUPYTERHUB_SERVER_NAME", ""))
            for p in by_kind["server"]
        )
        for server, count in sorted(server_procs.items()):
            if server not in running or count != 1:
                problems.append(f"{count} single-user process(es) of {server}, running: {running}")
        for server in sorted(running - set(server_procs)):
            problems.append(f"the hub runs {server} but no process serves it")
        for proc in by_kind["runner"] + by_kind["job"]:
            job = proc.environ.get("AITESTBED_LOCAL_JOB") or Path(proc.cmdline[-1]).name
            if job not in active_jobs:
                problems.append(f"{proc.kind} process {proc.pid} of job {job}, which is not active")
        if by_kind["other"]:
            problems.append(f"unknown processes: {[p.command for p in by_kind['other']]}")
        expected = {
            hub_pid: {self.settings.site.hub_port},
            proxy_pid: {self.settings.site.proxy_api_port, _port(self.settings.site.bind_url)},
        }
        for proc in by_kind["portal"]:
            expected[proc.pid] = {self.settings.site.portal_port}
        for proc in by_kind["server"]:
            key = (
                proc.environ.get("JUPYTERHUB_USER", ""),
                proc.environ.get("JUPYTERHUB_SERVER_NAME", ""),
            )
            url = servers.get(key, {}).get("url") or ""
            expected[proc.pid] = {_port(proc.environ.get("JUPYTERHUB_SERVICE_URL", url))}
        for pid, ports in self.listening_ports({p.pid for p in processes}).items():
            extra = ports - expected.get(pid, set())
            if extra:
                problems.append(f"ports {sorted(extra)} left bound by process {pid}")
        return problems

    def settle(self, timeout: float = 120) -> None:
        """Wait until every invariant holds (the deployment recovers on its own, within
        bounds: the hub restarts its services, the portal reconciles); fail with the
        violations still there at the end."""
        deadline = time.monotonic() + timeout
        problems: list[str] = ["not checked yet"]
        while time.monotonic() < deadline:
            try:
                problems = self.violations()
            except (requests.RequestException, OSError) as error:
                problems = [f"cannot look: {error}"]
            if not problems:
                return
            time.sleep(0.5)
        raise AssertionError(
            "invariants broken after the fault:\n- "
            + "\n- ".join(problems)
            + f"\n--- hub log ---\n{self.portal.log()[-4000:]}"
        )


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1].split("/", 1)[0])
