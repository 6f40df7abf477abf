"""Shared fixtures: settings documents, databases (SQLite and a real PostgreSQL server)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.harness import REPO, free_port

EXAMPLE_SETTINGS = REPO / "hub_config" / "settings.yaml"


@pytest.fixture
def settings_doc() -> dict:
    """The embedded default settings as a mutable document."""
    return yaml.safe_load(EXAMPLE_SETTINGS.read_text())


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(
            "PostgreSQL server binaries are missing: run scripts/setup.sh --test "
            "(installs the Debian package postgresql)."
        )
    return found[-1]


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server on a free loopback port, for the whole test session."""
    base = Path(tempfile.mkdtemp(prefix="aitestbed-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: use the account the Debian package creates.
        user = pwd.getpwnam("postgres")
        for path in (base, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run(
        [*as_user, _postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        **run,
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_user,
            _postgres_bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "start",
            "-l",
            str(base / "server.log"),
        ],
        **run,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                [*as_user, _postgres_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                **run,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """An empty database: SQLite in a temp folder, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'portal.sqlite'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"t_{os.getpid()}_{free_port()}"
    admin_url = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
