"""A real single-node Slurm for the whole test session, and two Unix users who submit."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.slurm.slurm_cluster import ensure_user, new_cluster

UNIX_USERS = {"alice": "aitb-alice", "bob": "aitb-bob"}


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.geteuid() != 0:
        # A failure, not a skip: a skipped Slurm suite would let Slurm defects through.
        pytest.fail(
            "The Slurm tests need root (slurmd starts jobs as their users, slurmrestd and "
            "munged run as their own accounts): run them as root, as CI does."
        )
    cluster = new_cluster()
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.base, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_users():
    """The two test users, created once (idempotent), with their homes and a project folder."""
    base = Path(tempfile.mkdtemp(prefix="aitestbed-cluster-fs-"))
    base.chmod(0o755)
    homes = base / "homes"
    projects = base / "projects"
    homes.mkdir()
    projects.mkdir()
    accounts = {}
    for portal_name, unix_name in UNIX_USERS.items():
        account = ensure_user(unix_name)
        home = homes / unix_name
        home.mkdir()
        os.chown(home, account.pw_uid, account.pw_gid)
        home.chmod(0o700)
        accounts[portal_name] = account
    project_dir = projects / "acme-vision"
    project_dir.mkdir()
    project_dir.chmod(0o1777)
    yield {"base": base, "homes": homes, "projects": projects, "accounts": accounts}
    shutil.rmtree(base, ignore_errors=True)
