"""Runs one local job and records its state in ``status.json`` (the local backend's runner).

``python -m aitestbed.portal.jobs.local_runner <job-dir>``, started by the local backend in
a session of its own, so it outlives a portal restart. The job's process group gets SIGTERM
at the time limit (then SIGKILL) or when a ``cancel`` file appears with a SIGTERM to this
runner; the final state (COMPLETED, FAILED, CANCELLED, TIMEOUT) and the exit code are
written atomically before the runner exits. Its first status (PENDING, with its pid) comes
before anything that can fail; a job that cannot start (its working folder was removed) is
FAILED with the reason, and a runner that dies without a final status is noticed by the
backend's next poll.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

GRACE_SECONDS = 5
#: set in every job's environment to the job's id: marks the job's processes
JOB_MARK_ENV = "AITESTBED_LOCAL_JOB"


def write_status(job_dir: Path, **values) -> None:
    path = job_dir / "status.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(values)
    tmp = job_dir / "status.json.tmp"
    tmp.write_text(json.dumps(current))
    tmp.replace(path)


def now() -> str:
    return datetime.now(UTC).isoformat()


def stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def start_failure(job: dict, error: OSError) -> str:
    """Why the job could not start, in words its owner can act on."""
    folder = job["working_dir"]
    if not os.path.isdir(folder):
        return f"the working folder {folder} no longer exists; create it and submit the job again."
    where = f" ({error.filename})" if error.filename else ""
    return f"the job could not start: {error.strerror}{where}; fix that and submit it again."


def main(job_dir: Path) -> int:
    cancelled = {"flag": False}

    def on_term(_signum, _frame):
        cancelled["flag"] = True

    signal.signal(signal.SIGTERM, on_term)
    write_status(job_dir, state="PENDING", runner_pid=os.getpid())
    job = json.loads((job_dir / "job.json").read_text())
    if cancelled["flag"] or (job_dir / "cancel").exists():
        write_status(job_dir, state="CANCELLED", ended_at=now(), exit_code=None)
        return 0
    try:
        with open(job["output_path"], "ab") as output:
            process = subprocess.Popen(
                ["/bin/bash", str(job_dir / "script.sh")],
                cwd=job["working_dir"],
                env=job["environment"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as error:
        reason = start_failure(job, error)
        write_status(job_dir, state="FAILED", ended_at=now(), exit_code=None, reason=reason)
        return 1
    write_status(job_dir, state="RUNNING", started_at=now(), job_pid=process.pid)
    deadline = time.monotonic() + job["time_limit_seconds"]
    timed_out = False
    while process.poll() is None:
        if cancelled["flag"] or (job_dir / "cancel").exists():
            cancelled["flag"] = True
            stop_group(process)
            break
        if time.monotonic() >= deadline:
            timed_out = True
            stop_group(process)
            break
        time.sleep(0.1)
    returncode = process.wait()
    if timed_out:
        state = "TIMEOUT"
    elif cancelled["flag"]:
        state = "CANCELLED"
    else:
        state = "COMPLETED" if returncode == 0 else "FAILED"
    exit_code = returncode if returncode >= 0 else 128 - returncode
    write_status(job_dir, state=state, ended_at=now(), exit_code=exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
