"""The notebook side of jobs (client API, CLI, %%job magic, widgets) against a real portal
app with the local backend, served over HTTP by uvicorn on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import uvicorn
from aitestbed.notebook import jobs
from aitestbed.notebook.client import PortalClient, PortalError
from aitestbed.notebook.job_widgets import JobLauncher, JobMonitor
from aitestbed.notebook.magics import job_magic
from aitestbed.portal.jobs.local import LocalBackend

from tests.harness import free_port, wait_until
from tests.jobs_support import PREFIX, make_app, write_settings


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory):
    import yaml

    from tests.conftest import EXAMPLE_SETTINGS

    base = tmp_path_factory.mktemp("nb-jobs")
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"]["state_dir"] = str(base / "state")
    path = write_settings(base / "settings.yaml", doc)
    for name in ("alice", "bob"):
        (base / "state" / "homes" / name).mkdir(parents=True)
    backend = LocalBackend(base / "state" / "jobs", seconds_per_minute=1.0)
    app, _gateway, engine = make_app(path, backend, ["alice", "bob"], poll_interval=0.2)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}{PREFIX}"
    wait_until(lambda: server.started, timeout=30, what="portal app")
    yield url
    server.should_exit = True
    thread.join(timeout=30)
    engine.dispose()


@pytest.fixture
def alice(portal_url):
    return PortalClient(portal_url, "t-alice")


def test_submit_wait_logs_and_list(alice, capsys):
    job = jobs.submit(["python", "-c", "print('from the job')"], client=alice, name="hello")
    assert job.state == "PENDING" and job.data["project"] == "acme-vision"
    assert job.wait(timeout=60, interval=0.2) == "COMPLETED"
    assert f"job {job.id} hello: COMPLETED" in capsys.readouterr().err
    assert job.logs().strip() == "from the job"
    assert job.id in [j.id for j in jobs.list(alice)]


def test_string_commands_are_split_not_run_by_a_shell(alice):
    job = jobs.submit("printf '%s|' 'a b' '$(id)'", client=alice)
    job.wait(timeout=60, interval=0.2, progress=False)
    assert job.logs() == "a b|$(id)|"


def test_cancel_and_errors_name_the_field(alice):
    job = jobs.submit(["sleep", "60"], client=alice)
    job.cancel()
    assert job.wait(timeout=60, interval=0.2, progress=False) == "CANCELLED"
    with pytest.raises(PortalError) as caught:
        jobs.submit(["true"], client=alice, nodes=-1, retries=0)
    assert caught.value.status == 422 and "nodes:" in str(caught.value)


def test_cli_submit_wait_list_logs(portal_url):
    env = {**os.environ, "AITESTBED_PORTAL_URL": portal_url, "JUPYTERHUB_API_TOKEN": "t-bob"}
    cli = [sys.executable, "-m", "aitestbed.notebook.cli", "job"]

    def run(*args):
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=120)

    submitted = run(
        "submit",
        "--project",
        "acme-vision",
        "--name",
        "cli",
        "--wait",
        "--",
        "python",
        "-c",
        "print(6 * 7)",
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = int(submitted.stdout.split()[2])
    assert "COMPLETED" in submitted.stderr
    listed = run("list")
    assert f"{job_id}  cli" in listed.stdout and "COMPLETED" in listed.stdout
    assert run("logs", str(job_id)).stdout.strip() == "42"
    refused = run("submit", "--project", "someone-elses", "--", "true")
    assert refused.returncode == 2 and "project:" in refused.stderr


def test_job_magic_submits_the_cell_as_a_script(alice, capsys):
    job = job_magic("--project acme-vision --name cell", "echo one\necho two >&2", client=alice)
    assert "Submitted job" in capsys.readouterr().out
    assert job.wait(timeout=60, interval=0.2, progress=False) == "COMPLETED"
    assert job.logs().split() == ["one", "two"]


def test_job_magic_takes_the_cli_options_including_datasets(alice):
    """The public iris dataset needs no terms: the job finds it where a session does."""
    job = job_magic(
        "--project acme-vision --name ds --dataset iris --time 5",
        'ls "$AITESTBED_DATASETS_DIR"',
        client=alice,
    )
    assert job.data["datasets"] == ["iris"] and job.data["time_limit_minutes"] == 5
    assert job.wait(timeout=60, interval=0.2, progress=False) == "COMPLETED"
    assert job.logs().split() == ["iris"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("--gpus many", "argument --gpus: invalid int value: 'many'"),
        ("--frobnicate 3", "unrecognized arguments: --frobnicate 3"),
        ("--name 'unclosed", "No closing quotation"),
    ],
)
def test_job_magic_bad_options_are_one_line_naming_the_problem(alice, line, problem):
    from aitestbed.notebook.magics import JobOptionError

    with pytest.raises(JobOptionError) as raised:
        job_magic(line, "true", client=alice)
    message = str(raised.value)
    assert message.startswith("%%job: ") and problem in message and "\n" not in message
    # IPython shows exactly this line instead of a traceback.
    assert raised.value._render_traceback_() == [message]
    if "Options" in message:
        assert "--dataset" in message and "--project" in message and "--wait" in message


def test_job_magic_registers_in_ipython():
    from aitestbed.notebook import magics
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    magics.load_ipython_extension(shell)
    assert "job" in shell.magics_manager.magics["cell"]


def test_launcher_and_monitor_widgets(alice):
    launcher = JobLauncher(alice)
    assert launcher.project.options == ("acme-vision",)
    launcher.target.value = ""
    launcher.submit_button.click()
    assert "Say what to run" in launcher.message.value
    launcher.target.value = "sleep 60"
    launcher.job_name.value = "from-widget"
    launcher.submit_button.click()
    job = launcher.last_job
    assert job is not None and f"Submitted job <b>{job.id}</b>" in launcher.message.value

    monitor = JobMonitor(alice, interval=None)
    assert "from-widget" in monitor.table.value
    assert monitor.selected.value == job.id  # newest first
    wait_until(lambda: job.status() == "RUNNING", timeout=30, what="job running")
    assert not monitor.cancel_button.disabled
    monitor.cancel_button.click()
    assert f"Cancel requested for job {job.id}" in monitor.message.value
    wait_until(lambda: job.status() == "CANCELLED", timeout=30, what="job cancelled")
    monitor.refresh()
    assert "CANCELLED" in monitor.table.value
    assert monitor.cancel_button.disabled  # an ended job cannot be cancelled again
    assert monitor.cancel_button.tooltip == (
        f"Job {job.id} has ended (CANCELLED); there is nothing to cancel."
    )
    launcher.target.value = "true"
    launcher.gpus.value = 4  # the demo's local partition has 3 GPUs per node
    launcher.submit_button.click()
    assert "gpus_per_node" in launcher.message.value


def test_monitor_widget_state_through_a_real_kernel(portal_url, alice):
    """nbclient runs a notebook in a real kernel; the saved widget state holds the table."""
    import nbformat
    from nbclient import NotebookClient

    job = jobs.submit(["echo", "for-the-kernel"], client=alice, name="kernel-visible")
    job.wait(timeout=60, interval=0.2, progress=False)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import aitestbed\nmonitor = aitestbed.job_monitor(interval=None)\nmonitor"
        ),
        nbformat.v4.new_code_cell("print(monitor.log_view.value.strip())"),
    ]
    env_before = dict(os.environ)
    os.environ.update({"AITESTBED_PORTAL_URL": portal_url, "JUPYTERHUB_API_TOKEN": "t-alice"})
    try:
        NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    html_values = [
        m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"
    ]
    assert any("kernel-visible" in value and "COMPLETED" in value for value in html_values)
    assert notebook.cells[1].outputs[0]["text"].strip() == "for-the-kernel"
