"""ipywidgets views of the portal for notebooks."""

from __future__ import annotations

import html
from datetime import date

import ipywidgets as widgets

from aitestbed.notebook.client import PortalClient, PortalError, allocation_elapsed

STATUS_STYLE = {"active": "success", "not-yet-valid": "info", "expired": "danger"}


def _project_card(project: dict, today: date) -> widgets.Widget:
    alloc = project["allocation"]
    elapsed = allocation_elapsed(alloc["valid_from"], alloc["valid_until"], today)
    title = widgets.HTML(
        f"<b>{html.escape(project['title'])}</b> <code>{html.escape(project['slug'])}</code>"
        f" &middot; {html.escape(project['status'])}"
        f" &middot; role: {html.escape(project.get('role') or 'operator')}"
    )
    facts = widgets.HTML(
        "<table class='aitestbed-allocation'>"
        f"<tr><td>GPU-hour budget</td><td>{alloc['gpu_hours']:g}</td></tr>"
        f"<tr><td>GPUs at the same time</td><td>{alloc['max_concurrent_gpus']}</td></tr>"
        f"<tr><td>Project storage</td><td>{alloc['storage_quota_gb']} GB</td></tr>"
        f"<tr><td>Valid</td><td>{alloc['valid_from']} to {alloc['valid_until']}</td></tr>"
        "</table>"
    )
    period = widgets.FloatProgress(
        value=elapsed,
        min=0.0,
        max=1.0,
        description="Period",
        bar_style=STATUS_STYLE.get(project["status"], ""),
        tooltip=f"{elapsed:.0%} of the allocation period has passed",
    )
    return widgets.VBox([title, facts, period], layout=widgets.Layout(margin="0 0 8px 0"))


class QuotaPanel(widgets.VBox):
    """The user's projects and allocations, with a refresh button."""

    def __init__(self, client: PortalClient | None = None, today: date | None = None) -> None:
        self._client = client
        self._today = today
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
        if not me["projects"]:
            self.body.children = (
                widgets.HTML("You belong to no project yet. Ask an operator for access."),
            )
            return
        self.body.children = tuple(_project_card(p, today) for p in me["projects"])


def quota_panel(client: PortalClient | None = None) -> QuotaPanel:
    """Show your projects and allocations: ``aitestbed.quota_panel()``."""
    return QuotaPanel(client)
