"""Job gateway benchmark against a real single-node Slurm (run as root, by hand or `make bench`).

1. Polling: USERS simulated users each ask for their job's status every second for
   SECONDS seconds. Counted: calls that reach slurmrestd per poll interval, with the
   gateway (users read the portal database; one poller per backend) and with naive
   forwarding (each user request becomes a slurmrestd call).
2. Submit throughput: jobs per second through the gateway (validation, quota, database,
   JWT, slurmrestd) vs direct slurmrestd submits of the same script; the ratio.

    .venv/bin/python -m bench.jobs_bench [--users 200] [--seconds 60] [--submits 40]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml
from aitestbed.portal.auth import Identity
from aitestbed.portal.db import session_factory
from aitestbed.portal.jobs.gateway import JobGateway
from aitestbed.portal.jobs.slurm import SlurmBackend, mint_token
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings

from tests.conftest import EXAMPLE_SETTINGS
from tests.slurm.slurm_cluster import PARTITION, ensure_user, new_cluster

UNIX_USER = "aitb-alice"


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.lock = threading.Lock()

    def request(self, *args, **kwargs):
        with self.lock:
            self.calls += 1
        return super().request(*args, **kwargs)


def settings_for(cluster, state: Path, home: Path) -> Path:
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"]["state_dir"] = str(state)
    doc["projects"][0]["allocation"]["gpu_hours"] = 10**6
    doc["jobs"] = {
        "backend": "slurm",
        "partitions": [
            {
                "name": PARTITION,
                "default": True,
                "cpus_per_node": 4,
                "memory_per_node_mb": 1000,
                "gpus_per_node": 2,
                "gpu_type": "fake",
            }
        ],
        "home_template": str(home.parent / "{user}"),
        "user_mapping": {"template": "aitb-{name}"},
        "slurm": {
            "rest_url": cluster.rest_url,
            "jwt_key_file": str(cluster.jwt_key),
            "job_completion_file": str(cluster.jobcomp_file),
        },
    }
    path = state / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def polling(gateway: JobGateway, session: CountingSession, job_ids, users, seconds, forward):
    alice = Identity("alice", hub_admin=False, scopes=frozenset())
    stop = time.monotonic() + seconds
    requests_made = [0]
    lock = threading.Lock()

    def user(index: int) -> None:
        job_id = job_ids[index % len(job_ids)]
        while time.monotonic() < stop:
            job = gateway.get(alice, job_id)
            if forward:
                gateway.backend.poll([job.backend_job_id])
            with lock:
                requests_made[0] += 1
            time.sleep(1.0)

    def poller() -> None:
        while time.monotonic() < stop:
            gateway.poll_once()
            time.sleep(1.0)

    before = session.calls
    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    if not forward:
        threads.append(threading.Thread(target=poller))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "user_requests": requests_made[0],
        "slurmrestd_calls": session.calls - before,
        "slurmrestd_calls_per_interval": (session.calls - before) / seconds,
    }


def submit_throughput(gateway: JobGateway, cluster, home: Path, count: int) -> dict:
    alice = Identity("alice", hub_admin=False, scopes=frozenset())
    body = {
        "project": "acme-vision",
        "command": ["true"],
        "time_limit_minutes": 1,
        "working_dir": str(home),
    }
    started = time.perf_counter()
    for _ in range(count):
        gateway.submit(alice, body, None)
    through_gateway = count / (time.perf_counter() - started)
    key = cluster.jwt_key.read_bytes()
    script = "#!/bin/bash\nexec true\n"
    job = {
        "name": "direct",
        "partition": PARTITION,
        "current_working_directory": str(home),
        "environment": {"PATH": "/usr/bin:/bin"},
        "time_limit": 1,
    }
    http = requests.Session()
    started = time.perf_counter()
    for _ in range(count):
        token = mint_token(key, UNIX_USER, 300)
        response = http.post(
            f"{cluster.rest_url}/slurm/v0.0.38/job/submit",
            headers={"X-SLURM-USER-NAME": UNIX_USER, "X-SLURM-USER-TOKEN": token},
            json={"script": script, "job": job},
            timeout=30,
        )
        response.raise_for_status()
    direct = count / (time.perf_counter() - started)
    return {
        "gateway_per_s": through_gateway,
        "direct_per_s": direct,
        "ratio": through_gateway / direct,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--submits", type=int, default=40)
    args = parser.parse_args()
    account = ensure_user(UNIX_USER)
    base = Path(tempfile.mkdtemp(prefix="aitestbed-bench-"))
    base.chmod(0o755)
    home = base / "homes" / UNIX_USER
    home.mkdir(parents=True)
    os.chown(home, account.pw_uid, account.pw_gid)
    cluster = new_cluster()
    cluster.start()
    try:
        settings = load_settings(settings_for(cluster, base, home))
        engine = prepare_database(settings)
        session = CountingSession()
        gateway = JobGateway(
            session_factory(engine), settings, SlurmBackend(settings.jobs.slurm, http=session)
        )
        alice = Identity("alice", hub_admin=False, scopes=frozenset())
        job_ids = [
            gateway.submit(
                alice,
                {"project": "acme-vision", "command": ["sleep", "600"], "working_dir": str(home)},
                None,
            )[0].id
            for _ in range(4)
        ]
        results = {
            "users": args.users,
            "seconds": args.seconds,
            "gateway_polling": polling(gateway, session, job_ids, args.users, args.seconds, False),
            "forwarding": polling(gateway, session, job_ids, args.users, args.seconds, True),
        }
        cluster._run("scancel", "--full", "-p", PARTITION)
        results["submit"] = submit_throughput(gateway, cluster, home, args.submits)
        print(json.dumps(results, indent=2))
        out = Path("bench/results")
        out.mkdir(parents=True, exist_ok=True)
        (out / "jobs_bench.json").write_text(json.dumps(results, indent=2))
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
