"""Processes the hub starts end with the hub (``aitestbed.lifetime``), and a portal whose
port is taken says so (``portal.service.listen``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from aitestbed.lifetime import PARENT_PID_ENV, watch_parent
from aitestbed.portal.service import PortInUse, listen

from tests.harness import REPO


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its (dead) parent's reaper counts as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_tied_child_ends_when_its_parent_is_killed_with_sigkill():
    # A stand-in for the hub: it starts a tied child (through the wrapper) and an untied one.
    parent_code = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        os.environ[{PARENT_PID_ENV!r}] = str(os.getpid())
        sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
        tied = subprocess.Popen([sys.executable, "-m", "aitestbed.lifetime", "--", *sleeper],
                                start_new_session=True)
        free = subprocess.Popen(sleeper, start_new_session=True)
        print(tied.pid, free.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    tied, free = (int(pid) for pid in parent.stdout.readline().split())
    try:
        # the wrapper became the command itself: same pid, the command's command line
        deadline = time.monotonic() + 10
        while b"time.sleep(120)" not in Path(f"/proc/{tied}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the wrapper did not exec its command"
            time.sleep(0.05)
        parent.kill()
        parent.wait()
        assert wait_gone(tied), "the tied child outlived its parent's SIGKILL"
        assert alive(free), "an untied child (a session, a job runner) must outlive it"
    finally:
        for pid in (tied, free):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_the_wrapper_does_not_start_a_command_whose_parent_is_already_gone():
    result = subprocess.run(
        [sys.executable, "-m", "aitestbed.lifetime", "--", "true"],
        cwd=REPO,
        env={**os.environ, PARENT_PID_ENV: "1"},  # not our parent: it "died" before
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == "true: not started, the process that started it (1) is gone.\n"


def test_the_watchdog_calls_back_once_when_the_parent_changes():
    parents = iter([42, 42, 1])
    gone = threading.Event()
    thread = watch_parent(42, gone.set, interval=0.01, getppid=lambda: next(parents, 1))
    assert gone.wait(5)
    thread.join(5)
    assert not thread.is_alive()


def test_a_portal_whose_port_is_taken_says_so_in_words():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse) as error:
            listen("127.0.0.1", port)
    assert str(error.value) == (
        f"The portal cannot listen on 127.0.0.1:{port}: the port is in use, probably by a "
        "portal left running by an earlier hub; stop that process (`ss -ltnp "
        f"'sport = :{port}'` shows it) and the hub starts the portal again."
    )
    listen("127.0.0.1", port).close()  # free again once the holder is gone
