"""Batch jobs from a notebook: ``aitestbed.jobs``.

::

    from aitestbed import jobs

    job = jobs.submit(["python", "train.py", "--epochs", "10"], gpus=2, time_limit=120)
    job.wait()                  # progress display; returns the final state
    print(job.logs())
    jobs.submit(notebook="analysis.ipynb", parameters={"lr": 0.01})   # papermill
    jobs.list()                 # your jobs, newest first

Every submission carries an idempotency key, so a retry (``retries=``, or after a lost
answer) never makes a second job.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from aitestbed.notebook.client import PortalClient, PortalError

FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
RETRYABLE = (502, 503, 504)


class Job:
    """A job you submitted; ``status()`` asks the portal, which the poller keeps current."""

    def __init__(self, data: dict[str, Any], client: PortalClient) -> None:
        self.data = data
        self.client = client

    @property
    def id(self) -> int:
        return self.data["id"]

    @property
    def state(self) -> str:
        return self.data["state"]

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.data['name']!r} {self.state}>"

    def refresh(self) -> Job:
        self.data = self.client.job(self.id)
        return self

    def status(self) -> str:
        """The job's state now: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED or TIMEOUT."""
        return self.refresh().state

    def wait(
        self,
        timeout: float | None = None,
        interval: float = 5.0,
        progress: bool = True,
        _sleep: Callable[[float], None] = time.sleep,
    ) -> str:
        """Wait until the job ends (or ``timeout`` seconds); returns its state."""
        display = _Progress(self) if progress else None
        started = time.monotonic()
        while True:
            state = self.status()
            if display:
                display.update()
            if state in FINAL_STATES:
                return state
            if timeout is not None and time.monotonic() - started >= timeout:
                return state
            _sleep(interval)

    def logs(self, tail_bytes: int = 65536) -> str:
        """The end of the job's output."""
        return self.client.job_logs(self.id, tail_bytes)["text"]

    def cancel(self) -> Job:
        self.data = self.client.cancel_job(self.id)
        return self


class _Progress:
    """One line that updates in place: an output in a notebook, ``\\r`` in a terminal."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.started = time.monotonic()
        self.handle = None
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None and getattr(get_ipython(), "kernel", None):
                self.handle = display({"text/plain": self._text()}, raw=True, display_id=True)
        except ImportError:  # pragma: no cover - IPython is in every session image
            pass

    def _text(self) -> str:
        data = self.job.data
        elapsed = int(time.monotonic() - self.started)
        extra = f" exit {data['exit_code']}" if data.get("exit_code") is not None else ""
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"job {data['id']} {data['name']}: {data['state']}{reason}{extra} [{elapsed}s]"

    def update(self) -> None:
        if self.handle is not None:
            self.handle.update({"text/plain": self._text()}, raw=True)
            return
        end = "\n" if self.job.state in FINAL_STATES else ""
        sys.stderr.write("\r" + self._text() + end)
        sys.stderr.flush()


def default_project(client: PortalClient) -> str:
    projects = [p["slug"] for p in client.me()["projects"] if p["status"] == "active"]
    if len(projects) == 1:
        return projects[0]
    if not projects:
        raise PortalError("You have no active project to charge jobs to.")
    raise PortalError(f"Choose the project to charge: project= one of {', '.join(projects)}.")


def submit(
    command: Sequence[str] | str | None = None,
    *,
    script: str | None = None,
    script_text: str | None = None,
    args: Sequence[str] = (),
    notebook: str | None = None,
    parameters: dict[str, Any] | None = None,
    project: str | None = None,
    name: str | None = None,
    gpus: int = 0,
    nodes: int = 1,
    cpus: int = 1,
    memory_mb: int | None = None,
    time_limit: int = 60,
    partition: str | None = None,
    working_dir: str | None = None,
    environment: dict[str, str] | None = None,
    image: str | None = None,
    distributed: str = "none",
    datasets: Sequence[str] = (),
    idempotency_key: str | None = None,
    retries: int = 2,
    client: PortalClient | None = None,
) -> Job:
    """Submit a command (a list: program and arguments), a script or a notebook.

    ``gpus`` is per node and ``time_limit`` in minutes. A string ``command`` is split into
    words like a shell would (quotes respected) but never run by a shell. ``datasets`` are
    catalog slugs the job reads: it finds each at ``$AITESTBED_DATASETS_DIR/<slug>``
    (read-only), as a session does; the portal refuses the job if you may not use one.
    """
    import shlex

    client = client or PortalClient()
    body: dict[str, Any] = {
        "project": project or default_project(client),
        "nodes": nodes,
        "gpus_per_node": gpus,
        "cpus_per_task": cpus,
        "time_limit_minutes": time_limit,
        "distributed": distributed,
    }
    if notebook:
        body.update(kind="notebook", notebook=notebook, parameters=parameters or {})
    elif script or script_text:
        body.update(kind="script", args=[*args])
        body["script" if script else "script_text"] = script or script_text
    elif command:
        words = shlex.split(command) if isinstance(command, str) else [*command]
        body.update(kind="command", command=words)
    else:
        raise ValueError("Give a command, a script or a notebook to run.")
    optional = {
        "name": name,
        "memory_mb": memory_mb,
        "partition": partition,
        "working_dir": working_dir,
        "environment": environment,
        "image": image,
        "datasets": [*datasets] if datasets else None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    key = idempotency_key or uuid.uuid4().hex
    for attempt in range(retries + 1):
        try:
            return Job(client.submit_job(body, key), client)
        except PortalError as error:
            if error.status not in (*RETRYABLE, None) or attempt == retries:
                raise
            time.sleep(min(2**attempt, 10))
    raise AssertionError("unreachable")  # pragma: no cover


def list(client: PortalClient | None = None) -> list[Job]:
    """Your jobs, newest first."""
    client = client or PortalClient()
    return [Job(data, client) for data in client.jobs()]


def get(job_id: int, client: PortalClient | None = None) -> Job:
    client = client or PortalClient()
    return Job(client.job(job_id), client)
