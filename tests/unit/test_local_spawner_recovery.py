"""A server process started just before the hub died is found again from the start-state
file (``PortalLocalSpawner.start_state_dir``), never confused with another process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import types
from unittest import mock

import pytest
from aitestbed.hub.local_spawner import PortalLocalSpawner


def spawner(state_dir, name: str = "alice") -> PortalLocalSpawner:
    user = mock.Mock()
    user.name = name
    orm_spawner = types.SimpleNamespace(id=7, state={}, server=None, name="")
    return PortalLocalSpawner(
        user=user, orm_spawner=orm_spawner, start_state_dir=str(state_dir), hub=mock.Mock()
    )


@pytest.fixture
def server_process():
    """A stand-in for alice's single-user server (its environment names it)."""
    env = {**os.environ, "JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": ""}
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    yield process
    process.kill()
    process.wait()


def test_a_restarted_hub_adopts_the_process_its_predecessor_started(tmp_path, server_process):
    starting = spawner(tmp_path)
    starting.pid = server_process.pid
    starting.save_started_process("http://127.0.0.1:4567")  # then the hub is killed
    restarted = spawner(tmp_path)  # no pid: the database never got it
    assert asyncio.run(restarted.poll()) is None
    assert (restarted.pid, restarted._recovered_url) == (
        server_process.pid,
        "http://127.0.0.1:4567",
    )


def test_a_file_naming_a_gone_or_foreign_process_is_dropped(tmp_path, server_process):
    starting = spawner(tmp_path, name="bob")  # the process is alice's, not bob's
    starting.pid = server_process.pid
    starting.save_started_process("http://127.0.0.1:4567")
    restarted = spawner(tmp_path, name="bob")
    assert asyncio.run(restarted.poll()) == 0
    assert restarted.pid == 0
    assert not (tmp_path / "spawner-7.json").exists()


def test_a_stop_removes_the_file(tmp_path, server_process):
    starting = spawner(tmp_path)
    starting.pid = server_process.pid
    starting.save_started_process("http://127.0.0.1:4567")
    starting.clear_state()
    assert not (tmp_path / "spawner-7.json").exists()
