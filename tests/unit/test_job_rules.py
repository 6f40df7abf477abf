"""The pure pieces of the job gateway: spec validation, script generation, state mapping,
quota arithmetic and JWT minting."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from aitestbed.portal import quota
from aitestbed.portal.jobs import script as job_script
from aitestbed.portal.jobs.slurm import (
    mint_token,
    observation_from_jobcomp,
    observation_from_rest,
    parse_jobcomp_line,
)
from aitestbed.portal.jobs.spec import JobSpecError, validate
from aitestbed.portal.jobs.states import JobState, from_slurm, split_exit_code
from aitestbed.settings import Jobs, Partition

JOBS = Jobs(
    partitions=(
        Partition(name="cpu", default=True, cpus_per_node=8, memory_per_node_mb=8000),
        Partition(
            name="gpu",
            gpu_type="a100",
            gpus_per_node=4,
            cpus_per_node=32,
            memory_per_node_mb=256000,
            max_nodes=4,
            max_time_minutes=2880,
        ),
    ),
    home_template="/home/{user}",
    project_dir_template="/projects/{project}",
)


def spec(**request):
    base = {"project": "acme", "command": ["python", "train.py"]}
    return validate({**base, **request}, jobs=JOBS, unix_user="alice", images={"pytorch": True})


def refused(**request) -> JobSpecError:
    with pytest.raises(JobSpecError) as caught:
        spec(**request)
    return caught.value


def test_defaults_fill_a_small_cpu_job_in_the_home():
    job = spec()
    assert (job.partition, job.nodes, job.gpus_per_node, job.cpus_per_task) == ("cpu", 1, 0, 1)
    assert job.working_dir == "/home/alice"
    assert job.time_limit_minutes == 60 and job.memory_mb == 1024


def test_gpu_job_in_the_project_folder():
    job = spec(partition="gpu", nodes=2, gpus_per_node=4, working_dir="/projects/acme/run1")
    assert job.total_gpus == 8 and job.gpu_type == "a100"
    assert job_script.gres(job) == "gpu:a100:4"
    assert job_script.gres(spec()) is None


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": "x; rm -rf /"}, "name"),
        ({"name": "$(reboot)"}, "name"),
        ({"name": "a" * 65}, "name"),
        ({"partition": "gpu;ls"}, "partition"),
        ({"partition": "nonexistent"}, "partition"),
        ({"nodes": 0}, "nodes"),
        ({"nodes": -1}, "nodes"),
        ({"partition": "gpu", "nodes": 5}, "nodes"),
        ({"gpus_per_node": 1}, "gpus_per_node"),
        ({"partition": "gpu", "gpus_per_node": 10**9}, "gpus_per_node"),
        ({"cpus_per_task": 9}, "cpus_per_task"),
        ({"memory_mb": -5}, "memory_mb"),
        ({"time_limit_minutes": 0}, "time_limit_minutes"),
        ({"time_limit_minutes": 10**7}, "time_limit_minutes"),
        ({"time_limit_minutes": True}, "time_limit_minutes"),
        ({"working_dir": "/etc"}, "working_dir"),
        ({"working_dir": "/home/alice/../bob"}, "working_dir"),
        ({"working_dir": "/home/alicex"}, "working_dir"),
        ({"working_dir": "/projects/other"}, "working_dir"),
        ({"working_dir": "../../etc"}, "working_dir"),
        ({"command": []}, "command"),
        ({"command": ["rm -rf /; echo"]}, "command"),
        ({"command": ["`id`"]}, "command"),
        ({"command": ["python", "a\nb"]}, "args[1]"),
        ({"command": ["python", "a\x00b"]}, "args[1]"),
        ({"environment": {"A;B": "x"}}, "environment.A;B"),
        ({"environment": {"SLURM_JOB_ID": "1"}}, "environment.SLURM_JOB_ID"),
        ({"environment": {"LD_PRELOAD": "/tmp/x.so"}}, "environment.LD_PRELOAD"),
        ({"environment": {"X": "line\nbreak"}}, "environment.X"),
        ({"kind": "notebook", "notebook": "/etc/passwd.ipynb"}, "notebook"),
        ({"kind": "notebook", "notebook": "run.py"}, "notebook"),
        ({"kind": "notebook", "notebook": "a.ipynb", "parameters": {"x y": 1}}, "parameters.x y"),
        ({"kind": "script", "script": "/root/evil.sh"}, "script"),
        ({"kind": "shell"}, "kind"),
        ({"image": "unknown"}, "image"),
        ({"project": "ACME; drop"}, "project"),
        ({"distributed": "mpi"}, "distributed"),
    ],
)
def test_hostile_or_impossible_requests_name_the_field(request_fields, field):
    error = refused(**request_fields)
    assert error.field == field
    assert error.reason and field in str(error)


def test_symlinks_out_of_the_allowed_roots_are_refused():
    def resolve(path):
        return path.replace("/home/alice/link", "/etc")

    with pytest.raises(JobSpecError) as caught:
        validate(
            {"project": "acme", "command": ["ls"], "working_dir": "/home/alice/link"},
            jobs=JOBS,
            unix_user="alice",
            resolve=resolve,
        )
    assert caught.value.field == "working_dir"
    assert "outside the folders jobs may use" in caught.value.reason


def test_arguments_with_shell_metacharacters_stay_literal_data(tmp_path):
    hostile = ["; touch PWNED", "$(touch PWNED2)", "`touch PWNED3`", "a'b\"c", "*", "&&", "|"]
    job = validate(
        {"project": "acme", "command": ["printf", "%s\\n", *hostile], "working_dir": str(tmp_path)},
        jobs=Jobs(home_template=str(tmp_path)),
        unix_user="alice",
    )
    text = job_script.render(job, job_uid="u1")
    result = subprocess.run(
        ["/bin/bash", "-c", text], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.splitlines() == hostile
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_script_starts_with_shebang_and_cds_to_the_quoted_working_dir():
    text = job_script.render(spec(working_dir="/home/alice/my dir"), job_uid="u1")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "cd -- '/home/alice/my dir' || exit 1" in lines
    assert lines[-1] == "exec python train.py"


def test_inline_script_runs_through_a_quoted_heredoc(tmp_path):
    body = "echo \"home=$HOME_X\"\nEOF\necho 'still here'\nexit 3"
    job = validate(
        {"project": "acme", "kind": "script", "script_text": body, "working_dir": str(tmp_path)},
        jobs=Jobs(home_template=str(tmp_path)),
        unix_user="alice",
    )
    result = subprocess.run(
        ["/bin/bash", "-c", job_script.render(job, job_uid="u")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME_X": "/h", "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.splitlines() == ["home=/h", "still here"]
    assert result.returncode == 3


def test_notebook_job_runs_papermill_with_base64_parameters_and_output_beside_it():
    job = spec(
        kind="notebook",
        notebook="nb/train.ipynb",
        parameters={"lr": 0.1, "name": "x'; rm -rf /"},
        command=None,
    )
    assert job.notebook == "/home/alice/nb/train.ipynb"
    assert job.notebook_output == "/home/alice/nb/train.output.ipynb"
    words = shlex.split(job_script.render(job, job_uid="u").splitlines()[-1])
    assert words[:5] == ["exec", "python3", "-m", "papermill", job.notebook]
    assert words[5] == job.notebook_output
    encoded = words[words.index("-b") + 1]
    assert json.loads(base64.b64decode(encoded)) == {"lr": 0.1, "name": "x'; rm -rf /"}


def test_container_launchers_and_torchrun_template():
    gpu = spec(partition="gpu", nodes=2, gpus_per_node=4, image="pytorch", distributed="torchrun")
    apptainer = job_script.render(
        gpu, job_uid="u", container_launcher="apptainer", image_ref="docker://reg/pytorch:1"
    )
    last = apptainer.splitlines()[-1]
    assert last.startswith("exec srun --ntasks-per-node=1 --kill-on-bad-exit=1 apptainer exec --nv")
    assert '"--nnodes=${SLURM_JOB_NUM_NODES:-1}"' in last and "--nproc_per_node=4" in last
    assert '"--rdzv_endpoint=${AITESTBED_HEAD_NODE}:29500"' in last
    assert last.endswith("python train.py")
    pyxis = job_script.render(
        spec(image="pytorch"), job_uid="u", container_launcher="pyxis", image_ref="reg/pt:1"
    )
    assert "srun --ntasks=1 --container-image=reg/pt:1 --container-workdir=/home/alice" in pyxis
    plain = job_script.render(spec(image="pytorch"), job_uid="u")
    assert plain.splitlines()[-1] == "exec python train.py"


@pytest.mark.parametrize(
    ("slurm", "state"),
    [
        ("PENDING", JobState.PENDING),
        ("CONFIGURING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETING", JobState.RUNNING),
        ("COMPLETED", JobState.COMPLETED),
        ("FAILED", JobState.FAILED),
        ("OUT_OF_MEMORY", JobState.FAILED),
        ("NODE_FAIL", JobState.FAILED),
        ("CANCELLED by 1002", JobState.CANCELLED),
        ("TIMEOUT", JobState.TIMEOUT),
        ("DEADLINE", JobState.TIMEOUT),
        ("SOMETHING_NEW", JobState.RUNNING),
        ("", JobState.RUNNING),
    ],
)
def test_slurm_states_map_to_six_states(slurm, state):
    assert from_slurm(slurm) == state


def test_exit_codes_from_rest_and_jobcomp():
    assert split_exit_code("3:0") == (3, 0) and split_exit_code("x") == (None, None)
    rest = observation_from_rest(
        {"job_state": "FAILED", "exit_code": 3 << 8, "start_time": 100, "end_time": 160}
    )
    assert (rest.state, rest.exit_code) == (JobState.FAILED, 3)
    assert rest.ended_at - rest.started_at == timedelta(seconds=60)
    killed = observation_from_rest({"job_state": "CANCELLED", "exit_code": 15})
    assert killed.exit_code == 128 + 15
    pending = observation_from_rest({"job_state": "PENDING", "state_reason": "Resources"})
    assert (pending.started_at, pending.reason) == (None, "Resources")
    line = (
        "JobId=7 UserId=a(1) GroupId=a(1) Name=my job JobState=CANCELLED Partition=gpu "
        "TimeLimit=1 StartTime=2026-11-26T04:06:16 EndTime=2026-11-26T04:07:16 NodeList=n1 "
        "WorkDir=/home/a/with space ExitCode=0:15"
    )
    fields = parse_jobcomp_line(line)
    assert fields["Name"] == "my job" and fields["WorkDir"] == "/home/a/with space"
    done = observation_from_jobcomp(fields)
    assert (done.state, done.exit_code) == (JobState.CANCELLED, 143)
    assert done.ended_at - done.started_at == timedelta(minutes=1)


def test_jwt_is_hs256_for_the_user_and_short_lived():
    key = b"k" * 32
    token = mint_token(key, "alice", 300, now=1_000_000)
    claims = jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sun": "alice", "iat": 1_000_000, "exp": 1_000_300}
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, b"x" * 32, algorithms=["HS256"], options={"verify_exp": False})


def test_quota_admission_and_charging():
    allocation = quota.Allocation(gpu_hours_budget=10, max_concurrent_gpus=4)
    assert quota.admit(allocation, quota.Usage(), gpus=4, time_limit_minutes=150) is None
    over_budget = quota.admit(allocation, quota.Usage(charged_gpu_hours=9), 2, 60)
    assert over_budget.field == "time_limit_minutes" and "1 left" in over_budget.reason
    reserved = quota.admit(allocation, quota.Usage(reserved_gpu_hours=8), 1, 180)
    assert reserved is not None
    cap = quota.admit(allocation, quota.Usage(gpus_in_use=3), 2, 1)
    assert cap.field == "gpus_per_node" and "4 GPUs at a time" in cap.reason
    assert quota.admit(allocation, quota.Usage(charged_gpu_hours=99), 0, 600) is None
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert quota.elapsed_gpu_hours(4, start, start + timedelta(minutes=30)) == 2.0
    assert quota.elapsed_gpu_hours(4, None, start) == 0.0
    assert quota.elapsed_gpu_hours(0, start, start + timedelta(hours=1)) == 0.0


def test_the_jwt_key_and_tokens_never_reach_logs_or_reprs(tmp_path, caplog):
    import logging

    from aitestbed.portal.jobs.backend import BackendUnavailable
    from aitestbed.portal.jobs.slurm import SlurmBackend
    from aitestbed.settings import SlurmSettings

    from tests.harness import free_port

    key = b"S3CRET-KEY-" + b"x" * 21
    key_file = tmp_path / "jwt.key"
    key_file.write_bytes(key)
    backend = SlurmBackend(
        SlurmSettings(rest_url=f"http://127.0.0.1:{free_port()}", jwt_key_file=key_file)
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendUnavailable) as caught:
        backend.poll(["1"])
    token = mint_token(key, "slurm", 300)
    for text in (caplog.text, str(caught.value), repr(backend)):
        assert "S3CRET" not in text and token.split(".")[0] not in text
    key_file.unlink()
    with pytest.raises(BackendUnavailable, match="JWT key file is unreadable"):
        backend.poll(["1"])


def test_only_a_connection_never_made_proves_a_request_was_not_sent():
    """Refused connection: surely not sent. Dropped after sending, or no answer in time:
    maybe sent (the gateway then looks the job up instead of forgetting it)."""
    import socket
    import threading

    import requests
    from aitestbed.portal.jobs.slurm import may_have_been_sent

    from tests.harness import free_port

    def error_of(url, timeout=2.0):
        try:
            requests.post(url, json={"a": 1}, timeout=timeout)
        except requests.RequestException as error:
            return error
        raise AssertionError("the request did not fail")

    assert not may_have_been_sent(error_of(f"http://127.0.0.1:{free_port()}/"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    behaviour = {"mode": "drop"}

    def serve():
        for _ in range(2):
            connection, _ = listener.accept()
            connection.recv(65536)
            if behaviour["mode"] == "drop":
                connection.close()  # read the request, then hang up without an answer
            else:
                threading.Event().wait(1.5)  # read it and answer nothing until the timeout
                connection.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    assert may_have_been_sent(error_of(f"http://127.0.0.1:{port}/"))
    behaviour["mode"] = "hold"
    timed_out = error_of(f"http://127.0.0.1:{port}/", timeout=0.5)
    assert isinstance(timed_out, requests.ReadTimeout) and may_have_been_sent(timed_out)
    server.join(timeout=5)
    listener.close()
