"""A private PostgreSQL server for tests and benchmarks (the Debian package's binaries)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.harness import free_port


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries are missing: run scripts/setup.sh --test "
            "(installs the Debian package postgresql)."
        )
    return found[-1]


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    """A private PostgreSQL server on a free loopback port; yields its URL (no database
    name: append one) and stops it afterwards."""
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
