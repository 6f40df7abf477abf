"""The portal side of the Slurm tests: its settings for a running test cluster, and what the
tests look at in Slurm and in the portal's database."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from tests.conftest import EXAMPLE_SETTINGS
from tests.jobs_support import write_settings
from tests.slurm.slurm_cluster import PARTITION


def job_python() -> list[str]:
    """A Python with papermill that the test users can run.

    This venv's interpreter may live where they cannot go (pyenv under /root): then the
    system Python of the same version runs with this venv's packages on its path.
    """

    def reachable(path: str) -> bool:
        path = os.path.abspath(path)
        while path != "/":
            if not os.stat(path).st_mode & 0o001:
                return False
            path = os.path.dirname(path)
        return True

    if reachable(sys.executable) and reachable(os.path.realpath(sys.executable)):
        return [sys.executable]
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.path.exists(system):
        pytest.fail(f"the test users cannot run {sys.executable} and there is no {system}")
    return ["/usr/bin/env", f"PYTHONPATH={sysconfig.get_paths()['purelib']}", system]


def portal_settings(
    slurm_cluster,
    cluster_users,
    state: Path,
    *,
    rest_url: str | None = None,
    overrides: dict[str, str] | None = None,
    members: tuple[str, ...] = (),
    request_timeout_seconds: float = 10,
) -> Path:
    """Settings of a portal whose jobs go to the test cluster (through ``rest_url`` when a
    test puts something in front of slurmrestd); ``members`` join acme-vision."""
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"]["state_dir"] = str(state)
    doc["jobs"] = {
        "backend": "slurm",
        "poll_interval_seconds": 0.5,
        "partitions": [
            {
                "name": PARTITION,
                "default": True,
                "gpu_type": "fake",
                "gpus_per_node": 2,
                "cpus_per_node": 4,
                "memory_per_node_mb": 1000,
                "max_time_minutes": 60,
            }
        ],
        "home_template": str(cluster_users["homes"] / "{user}"),
        "project_dir_template": str(cluster_users["projects"] / "{project}"),
        "user_mapping": {"template": "aitb-{name}", "overrides": overrides or {}},
        "papermill": [*job_python(), "-m", "papermill"],
        "slurm": {
            "rest_url": rest_url or slurm_cluster.rest_url,
            "jwt_key_file": str(slurm_cluster.jwt_key),
            "token_lifetime_seconds": 120,
            "poll_user": "slurm",
            "job_completion_file": str(slurm_cluster.jobcomp_file),
            "request_timeout_seconds": request_timeout_seconds,
        },
    }
    doc["projects"][0]["members"] += [{"user": name} for name in members]
    return write_settings(state / "settings.yaml", doc)


def squeue_ids(cluster, user: str, name: str | None = None) -> list[str]:
    argv = ["squeue", "-h", "-u", user, "-o", "%i"]
    if name:
        argv += ["-n", name]
    result = subprocess.run(
        argv, env=cluster.env(), capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.split()


def slurm_jobs_by_uid(cluster, user: str) -> dict[str, list[str]]:
    """The user's jobs slurmctld knows, grouped by the portal uid in their comment."""
    result = subprocess.run(
        ["squeue", "-h", "-u", user, "-t", "all", "-o", "%i|%k"],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    found: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        job_id, _, comment = line.partition("|")
        found.setdefault(comment.removeprefix("aitestbed:"), []).append(job_id)
    return found


def count_jobs(engine) -> int:
    from aitestbed.portal import models

    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(models.Job)).scalar_one()
