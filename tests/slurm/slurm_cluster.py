"""A real single-node Slurm for the tests: munge, slurmctld, slurmd and slurmrestd (JWT).

It installs nothing (``scripts/setup.sh --test`` installs the Debian packages) and needs
root, as a real Slurm node does. Everything lives in one temporary folder with private
ports and sockets, so it never meets a Slurm that the machine may already run:

- two fake GPUs through gres (``dev/nvidia0``/``1`` are symlinks to /dev/null, which is
  what Slurm needs to set CUDA_VISIBLE_DEVICES);
- ``PrivateData=jobs``: users see only their own jobs, as on a shared cluster;
- ``jobcomp/filetxt`` and a short ``MinJobAge``: finished jobs leave slurmctld quickly and
  the portal must find them in the job-completion record (no slurmdbd/MariaDB needed).

By hand::

    python -m tests.slurm.slurm_cluster /tmp/slurm-here    # runs until Ctrl-C, prints the URLs
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import free_port, wait_until

REST_USER = "aitb-slurmrestd"
NODE = "node1"
PARTITION = "gpu"
NODE_LINE = (
    f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=4 RealMemory=2000 "
    "Gres=gpu:fake:2 State=UNKNOWN"
)
MIN_JOB_AGE = 4  # seconds a finished job stays visible in slurmctld


def ensure_user(name: str, *, system: bool = False) -> pwd.struct_passwd:
    """Create a Unix user (no password, no login; ``system``: a UID below 1000) unless it
    exists; idempotent."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", *(["--system"] * system), "--no-create-home", "--shell", "/bin/bash", name],
            check=False,
            capture_output=True,
            timeout=60,
        )
        return pwd.getpwnam(name)


def missing_programs() -> list[str]:
    return [
        program
        for program in ("munged", "mungekey", "slurmctld", "slurmd", "slurmrestd", "scontrol")
        if shutil.which(program) is None and not Path("/usr/sbin", program).exists()
    ]


@dataclass
class SlurmCluster:
    """One running single-node cluster in ``base`` (a fresh temporary folder)."""

    base: Path
    ctld_port: int = field(default_factory=free_port)
    slurmd_port: int = field(default_factory=free_port)
    rest_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.base / "etc" / "slurm.conf"

    @property
    def jwt_key(self) -> Path:
        return self.base / "etc" / "jwt_hs256.key"

    @property
    def jobcomp_file(self) -> Path:
        return self.base / "log" / "jobcomp.txt"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def munge_socket(self) -> Path:
        return self.base / "munge" / "run" / "munge.socket.2"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- set-up -------------------------------------------------------------------------

    def _write_config(self) -> None:
        slurm = pwd.getpwnam("slurm")
        for sub in ("etc", "log", "state", "spool", "run", "dev"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("log", "state", "run"):
            os.chown(self.base / sub, slurm.pw_uid, slurm.pw_gid)
        for index in range(2):
            (self.base / "dev" / f"nvidia{index}").symlink_to("/dev/null")
        self.jwt_key.write_bytes(secrets.token_bytes(32))
        os.chown(self.jwt_key, slurm.pw_uid, slurm.pw_gid)
        self.jwt_key.chmod(0o600)
        self.jobcomp_file.touch()
        os.chown(self.jobcomp_file, slurm.pw_uid, slurm.pw_gid)
        b = self.base
        self.conf.write_text(
            f"""ClusterName=aitestbed
SlurmctldHost=localhost
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key={self.jwt_key}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation={b}/state
SlurmdSpoolDir={b}/spool
SlurmctldPidFile={b}/run/slurmctld.pid
SlurmdPidFile={b}/run/slurmd.pid
SlurmctldLogFile={b}/log/slurmctld.log
SlurmdLogFile={b}/log/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp_file}
MinJobAge={MIN_JOB_AGE}
KillWait=2
PrivateData=jobs
GresTypes=gpu
{NODE_LINE}
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=60 State=UP
""",
            encoding="utf-8",
        )
        (b / "etc" / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={NODE} Name=gpu Type=fake File={b}/dev/nvidia[0-1]\n",
            encoding="utf-8",
        )

    def _start_munge(self) -> None:
        munge = pwd.getpwnam("munge")
        root = self.base / "munge"
        for sub in ("etc", "run", "log", "lib"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            os.chown(root / sub, munge.pw_uid, munge.pw_gid)
        root.chmod(0o755)
        (root / "run").chmod(0o755)
        key = root / "etc" / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, timeout=30)
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o600)
        self._spawn(
            "munged",
            [
                "setpriv",
                f"--reuid={munge.pw_uid}",
                f"--regid={munge.pw_gid}",
                "--clear-groups",
                "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={root / 'run' / 'munged.pid'}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--seed-file={root / 'lib' / 'munged.seed'}",
            ],
        )
        wait_until(self.munge_socket.exists, timeout=30, what="munged socket")

    def _spawn(self, name: str, argv: list[str], **kwargs) -> None:
        log = (self.base / "log" / f"{name}.stdout").open("wb")
        self.processes[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=kwargs.pop("env", self.env()),
            **kwargs,
        )

    def _check(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.logs(name)}")

    def logs(self, name: str) -> str:
        text = ""
        for path in (self.base / "log").glob(f"{name}*"):
            text += f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:]
        return text

    def _run(self, *argv: str) -> str:
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env(), timeout=30, check=False
        )
        return result.stdout.strip()

    def start(self) -> SlurmCluster:
        missing = missing_programs()
        if missing:
            raise RuntimeError(
                f"Slurm is not installed ({', '.join(missing)} missing): "
                "run scripts/setup.sh --test."
            )
        ensure_user(REST_USER)
        self._write_config()
        self._start_munge()
        # slurmctld first: a slurmd started before it backs off and ignores SIGTERM.
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self.wait_controller()
        self._spawn("slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
        self.wait_node()
        rest = pwd.getpwnam(REST_USER)
        self._spawn(
            "slurmrestd",
            [
                "setpriv",
                f"--reuid={rest.pw_uid}",
                f"--regid={rest.pw_gid}",
                "--clear-groups",
                "slurmrestd",
                "-a",
                "rest_auth/jwt",
                "-s",
                "openapi/v0.0.38",
                f"127.0.0.1:{self.rest_port}",
            ],
            env={**self.env(), "SLURM_JWT": "daemon"},
        )
        self.wait_rest()
        return self

    def wait_controller(self) -> None:
        def controller_up() -> bool:
            self._check("slurmctld")
            return "UP" in self._run("scontrol", "ping")

        wait_until(controller_up, timeout=60, what="slurmctld")

    def wait_node(self) -> None:
        """Until the node takes jobs (idle, or busy with the jobs it already runs)."""

        def node_up() -> bool:
            self._check("slurmd")
            state = self._run("sinfo", "-h", "-n", NODE, "-o", "%T")
            return state.startswith(("idle", "mixed", "allocated"))

        wait_until(node_up, timeout=60, what="slurmd up")

    def kill(self, name: str) -> None:
        """``kill -9`` a daemon (its whole process group), as a crash would."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def restart(self, name: str) -> None:
        """Start a stopped or killed daemon again, as before, and wait until it serves."""
        if name == "slurmrestd":
            self.start_rest()
            return
        self._spawn(name, self.processes[name].args)
        if name == "slurmctld":
            self.wait_controller()
            self.wait_node()

    def wait_rest(self) -> None:
        import requests

        def rest_up() -> bool:
            self._check("slurmrestd")
            # Any HTTP answer means it listens (without a token it answers 401).
            return requests.get(f"{self.rest_url}/openapi.json", timeout=2).status_code > 0

        wait_until(rest_up, timeout=60, what="slurmrestd")

    def stop_rest(self) -> None:
        """Stop slurmrestd only (to test what users see when it is down)."""
        self._stop("slurmrestd")

    def start_rest(self) -> None:
        process = self.processes["slurmrestd"]
        self._spawn("slurmrestd", process.args, env={**self.env(), "SLURM_JWT": "daemon"})
        self.wait_rest()

    def _stop(self, name: str) -> None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        # Cancel what is left so slurmd has no job steps to wait for, then stop in reverse.
        if "slurmctld" in self.processes:
            self._run("scancel", "--full", "-p", PARTITION)
        for name in ("slurmrestd", "slurmd", "slurmctld", "munged"):
            self._stop(name)


def new_cluster() -> SlurmCluster:
    base = Path(tempfile.mkdtemp(prefix="aitestbed-slurm-"))
    base.chmod(0o755)
    return SlurmCluster(base)


def main() -> int:  # pragma: no cover - manual use
    if os.geteuid() != 0:
        print("Run as root: slurmd starts jobs as their users.", file=sys.stderr)
        return 1
    cluster = new_cluster()
    if len(sys.argv) > 1:
        shutil.rmtree(cluster.base)
        cluster.base = Path(sys.argv[1])
        cluster.base.mkdir(parents=True)
    cluster.start()
    print(f"Slurm running: SLURM_CONF={cluster.conf} slurmrestd {cluster.rest_url}")
    print(f"JWT key: {cluster.jwt_key}; Ctrl-C stops it.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
