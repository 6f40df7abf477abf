"""ipywidgets for batch jobs: a launcher form and a monitor (table, log tail, cancel)."""

from __future__ import annotations

import html
import threading

import ipywidgets as widgets

from aitestbed.notebook import jobs
from aitestbed.notebook.client import PortalClient, PortalError

STATE_COLOURS = {
    "PENDING": "#8a6d3b",
    "RUNNING": "#31708f",
    "COMPLETED": "#3c763d",
    "FAILED": "#a94442",
    "CANCELLED": "#777",
    "TIMEOUT": "#a94442",
}


class JobLauncher(widgets.VBox):
    """Project, what to run (command, script or notebook), GPUs, time limit, Submit."""

    def __init__(self, client: PortalClient | None = None) -> None:
        self.client = client or PortalClient()
        try:
            projects = [p["slug"] for p in self.client.me()["projects"] if p["status"] == "active"]
        except PortalError:
            projects = []
        self.project = widgets.Dropdown(options=projects, description="Project")
        self.kind = widgets.ToggleButtons(options=["command", "script", "notebook"])
        self.target = widgets.Text(
            description="Run", placeholder="python train.py  |  run.sh  |  analysis.ipynb"
        )
        self.gpus = widgets.BoundedIntText(value=0, min=0, max=64, description="GPUs/node")
        self.nodes = widgets.BoundedIntText(value=1, min=1, max=64, description="Nodes")
        self.time_limit = widgets.BoundedIntText(
            value=60, min=1, max=7 * 24 * 60, description="Minutes"
        )
        self.job_name = widgets.Text(value="job", description="Name")
        self.submit_button = widgets.Button(description="Submit", button_style="primary")
        self.submit_button.on_click(lambda _button: self.submit())
        self.message = widgets.HTML()
        self.last_job: jobs.Job | None = None
        super().__init__(
            [
                self.project,
                self.kind,
                self.target,
                widgets.HBox([self.gpus, self.nodes]),
                widgets.HBox([self.time_limit, self.job_name]),
                self.submit_button,
                self.message,
            ]
        )
        self.add_class("aitestbed-job-launcher")

    def submit(self) -> jobs.Job | None:
        target = self.target.value.strip()
        if not target:
            self.message.value = "<span class='error'>Say what to run.</span>"
            return None
        what: dict = {}
        if self.kind.value == "notebook":
            what["notebook"] = target
        elif self.kind.value == "script":
            what["script"] = target
        else:
            what["command"] = target
        try:
            job = jobs.submit(
                **what,
                project=self.project.value,
                name=self.job_name.value or "job",
                gpus=self.gpus.value,
                nodes=self.nodes.value,
                time_limit=self.time_limit.value,
                client=self.client,
            )
        except (PortalError, ValueError) as error:
            self.message.value = f"<span class='error'>{html.escape(str(error))}</span>"
            return None
        self.last_job = job
        self.message.value = f"Submitted job <b>{job.id}</b> ({html.escape(job.state)})."
        return job


class JobMonitor(widgets.VBox):
    """Your jobs as a live table; pick one to see its log tail or cancel it."""

    def __init__(self, client: PortalClient | None = None, interval: float | None = 10.0):
        self.client = client or PortalClient()
        self.table = widgets.HTML()
        self.selected = widgets.Dropdown(options=[], description="Job")
        self.selected.observe(lambda _change: self.show_logs(), names="value")
        self.log_view = widgets.Textarea(
            layout=widgets.Layout(width="100%", height="200px"), disabled=True
        )
        self.cancel_button = widgets.Button(description="Cancel job", button_style="danger")
        self.cancel_button.on_click(lambda _button: self.cancel_selected())
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.message = widgets.HTML()
        self.jobs: list[jobs.Job] = []
        self._stop = threading.Event()
        super().__init__(
            [
                self.table,
                widgets.HBox([self.selected, self.refresh_button, self.cancel_button]),
                self.log_view,
                self.message,
            ]
        )
        self.add_class("aitestbed-job-monitor")
        self.refresh()
        if interval:
            threading.Thread(target=self._auto, args=(interval,), daemon=True).start()

    def _auto(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.refresh()

    def close(self) -> None:
        self._stop.set()
        super().close()

    def refresh(self) -> None:
        try:
            self.jobs = jobs.list(self.client)
        except PortalError as error:
            self.message.value = f"<span class='error'>{html.escape(str(error))}</span>"
            return
        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style='color:{}'>{}</td>"
            "<td>{}</td><td>{}</td></tr>".format(
                j.id,
                html.escape(j.data["name"]),
                html.escape(j.data["project"]),
                STATE_COLOURS.get(j.state, "black"),
                html.escape(j.state),
                "" if j.data["exit_code"] is None else j.data["exit_code"],
                j.data["nodes"] * j.data["gpus_per_node"],
            )
            for j in self.jobs
        )
        self.table.value = (
            "<table class='aitestbed-jobs'><thead><tr><th>ID</th><th>Name</th><th>Project</th>"
            f"<th>State</th><th>Exit</th><th>GPUs</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        current = self.selected.value
        self.selected.options = [(f"{j.id} {j.data['name']}", j.id) for j in self.jobs]
        ids = [j.id for j in self.jobs]
        if current in ids:
            self.selected.value = current
        elif ids:
            self.selected.value = ids[0]
        self.show_logs()

    def _job(self) -> jobs.Job | None:
        return next((j for j in self.jobs if j.id == self.selected.value), None)

    def show_logs(self) -> None:
        job = self._job()
        # Only a job that has not ended can be cancelled; the tooltip says why not.
        self.cancel_button.disabled = job is None or job.state in jobs.FINAL_STATES
        self.cancel_button.tooltip = (
            "Pick a job first."
            if job is None
            else f"Job {job.id} has ended ({job.state}); there is nothing to cancel."
            if job.state in jobs.FINAL_STATES
            else f"Cancel job {job.id}."
        )
        if job is None:
            self.log_view.value = ""
            return
        try:
            self.log_view.value = job.logs(tail_bytes=16384)
        except PortalError as error:
            self.log_view.value = str(error)

    def cancel_selected(self) -> None:
        job = self._job()
        if job is None:
            return
        try:
            job.cancel()
            self.message.value = f"Cancel requested for job {job.id}."
        except PortalError as error:
            self.message.value = f"<span class='error'>{html.escape(str(error))}</span>"
        self.refresh()


def job_launcher(client: PortalClient | None = None) -> JobLauncher:
    return JobLauncher(client)


def job_monitor(client: PortalClient | None = None, interval: float | None = 10.0) -> JobMonitor:
    return JobMonitor(client, interval)
