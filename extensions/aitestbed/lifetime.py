"""Processes that end when the process that started them ends, whatever killed it.

The hub starts the portal service and the idle culler; a hub killed with ``kill -9`` must
not leave them running (the restarted hub's portal could not bind its port while the old
one served old settings, and two cullers would run). Two layers, both tied to a parent pid
the hub hands down in ``AITESTBED_PARENT_PID``:

- ``python -m aitestbed.lifetime -- <command>``: a tiny exec wrapper. On Linux it asks the
  kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, kept across ``exec``), checks
  that the parent is still the expected one (it may have died before the request took
  effect), then becomes ``<command>`` (same pid, so the hub's own bookkeeping is unchanged).
  The kernel sends the signal when the *thread* that forked the child exits: JupyterHub
  starts services from its event loop, i.e. its main thread, which lives as long as the hub.
- ``watch_parent``: a watchdog thread for a Python service (the portal) that notices the
  parent is gone (its parent pid changes) and stops the service, with a deadline; the
  fallback where the kernel request is not available.

Not every child of the hub is tied this way, on purpose: single-user servers outlive a hub
restart (JupyterHub finds them again by their pid), and the local job runners outlive a
portal restart (the portal finds them again by their job folder). The parent-death setting
is cleared in every child a tied process forks, so their children are unaffected.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

PARENT_PID_ENV = "AITESTBED_PARENT_PID"
_PR_SET_PDEATHSIG = 1

log = logging.getLogger("aitestbed.lifetime")


def set_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def expected_parent(environ: dict[str, str] | None = None) -> int | None:
    """The parent pid this process is tied to (from ``AITESTBED_PARENT_PID``), if any."""
    value = (os.environ if environ is None else environ).get(PARENT_PID_ENV, "")
    return int(value) if value.isdigit() else None


def watch_parent(
    parent: int,
    on_gone: Callable[[], None],
    *,
    interval: float = 1.0,
    getppid: Callable[[], int] = os.getppid,
) -> threading.Thread:
    """Call ``on_gone`` once (from a daemon thread) when this process's parent is no longer
    ``parent``; returns the started thread."""
    stopped = threading.Event()

    def watch() -> None:
        while getppid() == parent:
            if stopped.wait(interval):
                return
        on_gone()

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.stop = stopped.set  # type: ignore[attr-defined]
    thread.start()
    return thread


def stop_self(grace_seconds: float = 10.0) -> None:
    """SIGTERM to this process (a clean shutdown), and a hard exit if that takes longer
    than ``grace_seconds``."""
    timer = threading.Timer(grace_seconds, os._exit, args=(1,))
    timer.daemon = True
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """``python -m aitestbed.lifetime -- <command> [args...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m aitestbed.lifetime -- <command> [args...]", file=sys.stderr)
        return 2
    parent = expected_parent()
    set_parent_death_signal(signal.SIGTERM)
    if parent is not None and os.getppid() != parent:
        print(
            f"{args[0]}: not started, the process that started it ({parent}) is gone.",
            file=sys.stderr,
        )
        return 1
    try:
        os.execvp(args[0], args)  # noqa: S606 - the hub's own configured command, no shell
    except OSError as error:
        print(f"{args[0]}: cannot be started: {error.strerror}.", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main())
