"""ipywidgets views of the portal for notebooks."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from datetime import date

import ipywidgets as widgets

from aitestbed.notebook.client import PortalClient, PortalError, allocation_elapsed

STATUS_STYLE = {"active": "success", "not-yet-valid": "info", "expired": "danger"}


def _bar(label: str, share: float, style: str, tooltip: str) -> widgets.FloatProgress:
    return widgets.FloatProgress(
        value=min(max(share, 0.0), 1.0),
        min=0.0,
        max=1.0,
        description=label,
        bar_style=style,
        tooltip=tooltip,
        style={"description_width": "initial"},
    )


def _budget_style(share: float) -> str:
    return "danger" if share >= 1.0 else "warning" if share >= 0.8 else "success"


def _project_card(project: dict, usage: dict | None, today: date) -> widgets.Widget:
    alloc = project["allocation"]
    elapsed = allocation_elapsed(alloc["valid_from"], alloc["valid_until"], today)
    title = widgets.HTML(
        f"<b>{html.escape(project['title'])}</b> <code>{html.escape(project['slug'])}</code>"
        f" &middot; {html.escape(project['status'])}"
        f" &middot; role: {html.escape(project.get('role') or 'operator')}"
    )
    budget = alloc["gpu_hours"]
    if usage is None:
        used_row = f"<tr><td>GPU-hours</td><td>budget {budget:g} (usage unavailable)</td></tr>"
        gpus_row = f"<tr><td>GPUs at the same time</td><td>{alloc['max_concurrent_gpus']}</td></tr>"
    else:
        used = usage["gpu_hours_used"]
        used_row = (
            f"<tr><td>GPU-hours</td><td>{used:,.2f} used of {budget:g} "
            f"({max(budget - used, 0):,.2f} left)</td></tr>"
        )
        gpus_row = (
            f"<tr><td>GPUs in use</td><td>{usage['gpus_in_use']:g} of "
            f"{alloc['max_concurrent_gpus']} ({usage['running_sessions']} running "
            "sessions)</td></tr>"
        )
    facts = widgets.HTML(
        "<table class='aitestbed-allocation'>"
        f"{used_row}{gpus_row}"
        f"<tr><td>Project storage</td><td>{alloc['storage_quota_gb']} GB</td></tr>"
        f"<tr><td>Valid</td><td>{alloc['valid_from']} to {alloc['valid_until']}</td></tr>"
        "</table>"
    )
    bars = []
    if usage is not None:
        share = usage["gpu_hours_used"] / budget if budget > 0 else 1.0
        bars.append(
            _bar(
                f"GPU-hours used ({share:.0%})",
                share,
                _budget_style(share),
                f"{usage['gpu_hours_used']:,.2f} of {budget:g} GPU-hours used",
            )
        )
    bars.append(
        _bar(
            f"Allocation period ({elapsed:.0%} passed)",
            elapsed,
            STATUS_STYLE.get(project["status"], ""),
            f"{elapsed:.0%} of the allocation period "
            f"({alloc['valid_from']} to {alloc['valid_until']}) has passed",
        )
    )
    return widgets.VBox([title, facts, *bars], layout=widgets.Layout(margin="0 0 8px 0"))


def _course_message(course: dict) -> widgets.HTML:
    """The staff's message to a course's class (plain text, shown escaped)."""
    message = course["message"]
    return widgets.HTML(
        "<div class='aitestbed-course-message' style='white-space: pre-wrap'>"
        f"<b>{html.escape(course['title'])}</b>, message from {html.escape(message['by'])}: "
        f"{html.escape(message['text'])}</div>"
    )


def session_gpu_line(environ: Mapping[str, str]) -> str:
    """What this session's GPUs are, in one line ("" in a session without GPUs)."""
    devices = [d for d in environ.get("AITESTBED_GPUS", "").split(",") if d]
    if not devices:
        return ""
    names = ", ".join(devices)
    if environ.get("AITESTBED_GPU_SIMULATED") == "1":
        return (
            f"GPUs of this session: {names} (simulated: quota and usage count them, but CUDA "
            "finds no device)."
        )
    return f"GPUs of this session: {names} (CUDA_VISIBLE_DEVICES)."


class QuotaPanel(widgets.VBox):
    """The user's projects and allocations, with a refresh button."""

    def __init__(
        self,
        client: PortalClient | None = None,
        today: date | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._today = today
        self._environ = os.environ if environ is None else environ
        self.header = widgets.HTML()
        self.body = widgets.VBox()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _button: self.refresh())
        super().__init__([self.header, self.body, self.refresh_button])
        self.add_class("aitestbed-quota-panel")
        self.refresh()

    def refresh(self) -> None:
        try:
            client = self._client or PortalClient()
            self._client = client
            me = client.me()
        except PortalError as error:
            self.header.value = (
                f"<b>Quota</b>: <span class='error'>{html.escape(str(error))}</span>"
            )
            self.body.children = ()
            return
        today = self._today or date.today()
        role = " (operator)" if me["operator"] else ""
        self.header.value = f"<h3>Projects of {html.escape(me['name'])}{role}</h3>"
        gpus = session_gpu_line(self._environ)
        if gpus:
            self.header.value += f"<p class='aitestbed-gpus'>{html.escape(gpus)}</p>"
        if not me["projects"]:
            self.body.children = (
                widgets.HTML("You belong to no project yet. Ask an operator for access."),
            )
            return
        try:
            usage = {row["slug"]: row for row in client.usage()}
        except PortalError:
            usage = {}  # the allocation is still worth showing
        try:
            messages = [c for c in client.courses() if c.get("message")]
        except PortalError:
            messages = []  # a portal without courses, or one that does not answer now
        self.body.children = tuple(
            [
                *(_course_message(c) for c in messages),
                *(_project_card(p, usage.get(p["slug"]), today) for p in me["projects"]),
            ]
        )


def quota_panel(client: PortalClient | None = None) -> QuotaPanel:
    """Show your projects and allocations: ``aitestbed.quota_panel()``."""
    return QuotaPanel(client)
