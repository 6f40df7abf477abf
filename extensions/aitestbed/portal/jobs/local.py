"""The local backend: jobs as processes on the portal's machine (the embedded default).

Same states, output files, cancel and time limit as on Slurm, but no isolation: every job
runs as the portal's own user. Each job has a folder under ``jobs_dir`` with its script, its
``job.json`` and the ``status.json`` its runner keeps; the state lives there, so a restarted
portal finds every job again. The job's datasets appear in its folder as ``datasets/<slug>``
(links to exactly the datasets the gateway allowed), and ``AITESTBED_DATASETS_DIR`` points
there, as ``~/datasets`` does in an embedded session. The same Unix user can still read any
dataset folder directly: no isolation.

GPU jobs get devices of their own from the gateway's admission (``CUDA_VISIBLE_DEVICES``,
``AITESTBED_GPU_SIMULATED=1`` on simulated GPUs); as every job runs as the portal's user,
that is advice, not a limit (docs/gpus.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from aitestbed.policy.mounts import DATASETS_DIR_ENV, DATASETS_ENV
from aitestbed.portal.jobs.backend import BackendRejected, Observation, Submission
from aitestbed.portal.jobs.datasets import JobDataset
from aitestbed.portal.jobs.states import JobState


class LocalBackend:
    name = "local"
    files_owned_by_user = False
    places_datasets = True
    remembers_finished_jobs = False  # a job folder removed by hand is not a lost job here
    runs_here = True  # on the portal's machine: the portal gives GPU jobs their devices

    def __init__(self, jobs_dir: Path, *, seconds_per_minute: float = 60.0) -> None:
        """``seconds_per_minute`` scales time limits (tests use a fraction of a second)."""
        self.jobs_dir = Path(jobs_dir)
        self.seconds_per_minute = seconds_per_minute
        self._children: dict[str, subprocess.Popen] = {}

    def _dir(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise ValueError(f"not a local job id: {job_id!r}")
        return self.jobs_dir / job_id

    def submit(self, submission: Submission) -> str:
        spec = submission.spec
        if not Path(spec.working_dir).is_dir():
            raise BackendRejected(
                f"working_dir: {spec.working_dir} does not exist; create it first."
            )
        folders = {d.slug: _dataset_folder(d) for d in submission.datasets}
        job_dir = self._dir(submission.uid)
        job_dir.mkdir(parents=True, exist_ok=False)
        (job_dir / "script.sh").write_text(submission.script, encoding="utf-8")
        datasets_dir = job_dir / "datasets"
        datasets_dir.mkdir()
        for slug, folder in folders.items():
            (datasets_dir / slug).symlink_to(folder, target_is_directory=True)
        python_bin = os.path.dirname(sys.executable)
        environment = {
            "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.path.expanduser("~"),
            "LANG": "C.UTF-8",
            **submission.environment,
            DATASETS_DIR_ENV: str(datasets_dir),
            DATASETS_ENV: ",".join(sorted(folders)),
        }
        job = {
            "working_dir": spec.working_dir,
            "output_path": submission.output_path,
            "environment": environment,
            "time_limit_seconds": spec.time_limit_minutes * self.seconds_per_minute,
        }
        (job_dir / "job.json").write_text(json.dumps(job), encoding="utf-8")
        self._children[submission.uid] = subprocess.Popen(
            [sys.executable, "-m", "aitestbed.portal.jobs.local_runner", str(job_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(job_dir / "runner.log").open("ab"),
            start_new_session=True,
        )
        return submission.uid

    def poll(self, job_ids: Sequence[str]) -> dict[str, Observation]:
        for uid, child in list(self._children.items()):
            if child.poll() is not None:  # reap finished runners
                del self._children[uid]
        found = {}
        for job_id in job_ids:
            job_dir = self._dir(job_id)
            if not job_dir.is_dir():
                continue
            try:
                status = json.loads((job_dir / "status.json").read_text())
            except (OSError, ValueError):
                found[job_id] = Observation(JobState.PENDING)
                continue
            state = JobState(status["state"])
            runner_gone = job_id not in self._children and not _alive(status.get("runner_pid"))
            if state.active and runner_gone:
                # The runner died without a word (machine rebooted): the job is lost.
                found[job_id] = Observation(
                    JobState.FAILED, reason="the local runner stopped unexpectedly"
                )
                continue
            found[job_id] = Observation(
                state,
                exit_code=status.get("exit_code"),
                started_at=_time(status.get("started_at")),
                ended_at=_time(status.get("ended_at")),
            )
        return found

    def find(self, uids: Sequence[str]) -> dict[str, str]:
        return {uid: uid for uid in uids if uid.isalnum() and (self.jobs_dir / uid).is_dir()}

    def cancel(self, job_id: str, unix_user: str) -> None:
        job_dir = self._dir(job_id)
        (job_dir / "cancel").touch()
        try:
            status = json.loads((job_dir / "status.json").read_text())
        except (OSError, ValueError):
            return  # not started: the runner sees the cancel file first
        pid = status.get("runner_pid")
        if pid and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def user_exists(self, unix_user: str) -> bool:
        return True

    def account_uid(self, unix_user: str) -> int | None:
        return None  # every job runs as the portal's own user: the mapped name is a label


def _dataset_folder(dataset: JobDataset) -> Path:
    """The dataset's folder on this machine; other storage cannot reach a local job."""
    path = dataset.storage.get("path")
    if dataset.storage.get("kind") not in ("local", "host_path") or not path:
        raise BackendRejected(
            f"datasets: {dataset.slug!r} is stored where jobs on this machine cannot read it "
            f"({dataset.storage.get('kind')} storage)."
        )
    if not Path(path).is_dir():
        raise BackendRejected(
            f"datasets: the files of {dataset.slug!r} are not on this machine yet; tell the "
            "operators."
        )
    return Path(path)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
