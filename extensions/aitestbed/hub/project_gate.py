"""No active project, no server: the hub's check before a start, and where such a user lands.

A user who can log in but belongs to no project with a valid allocation (a new single
sign-on user, or one whose project expired) is sent to the portal's access page instead of
a server, and a start asked for any other way (the REST API, a bookmarked /hub/spawn) is
refused with the same explanation. Operators (hub admins) are never held here.

The portal answers the question (``GET api/internal/users/<name>/standing``):

- before every start the gate asks it, and a start is refused (403) or, when the portal
  does not answer, held back with one sentence (503);
- JupyterHub asks for the landing page synchronously, so :meth:`ProjectGate.default_url`
  answers from what the gate last heard: right after each login (:meth:`after_login`, the
  authenticator's post-login step) and at each start; an answer older than
  ``refresh_after`` seconds is asked again in the background. A user it knows nothing about
  lands where JupyterHub would send them, and the start decides.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable
from typing import Any

from tornado import web

from aitestbed.hub.portal_client import HubPortalClient, PortalRefused, PortalUnavailable
from aitestbed.hub.spawn_form import ACCESS_PAGE

CONSOLE_PAGE = "services/portal/console"
UNAVAILABLE = (
    "The portal service did not answer, so your project membership cannot be checked; "
    "try again in a minute."
)

log = logging.getLogger("aitestbed.project_gate")


def no_project_message(access_url: str) -> str:
    return (
        "You belong to no active project yet, so no server can start. "
        f"Ask for access at {access_url} - you can start one once an operator approves."
    )


def no_project_html(access_url: str) -> str:
    link = html.escape(access_url, quote=True)
    return (
        "You belong to no active project yet, so no server can start. "
        f'<a href="{link}">Ask for access on the access page</a>; you can start one once an '
        "operator approves."
    )


class NoProject(web.HTTPError):
    """403 for a start without an active project, worded for the person who asked.

    The hub's error page shows the HTML with the access page as a link; where text is shown
    (the spawn form, the start's progress events) it is the sentence itself, not
    "HTTP 403: ... (...)"."""

    def __init__(self, access_url: str) -> None:
        super().__init__(403, no_project_message(access_url), reason="No project")
        # The spawn form shows the text (JupyterHub 6.1 passes its HTML under a name its
        # template does not read; the form has its own link), the error page the HTML.
        self.jupyterhub_message = no_project_message(access_url)
        self.jupyterhub_html_message = no_project_html(access_url)

    def __str__(self) -> str:
        return self.log_message or ""


class ProjectGate:
    def __init__(
        self,
        portal: HubPortalClient,
        base_url: str = "/",
        *,
        refresh_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.portal = portal
        self.access_url = base_url + ACCESS_PAGE
        self.console_url = base_url + CONSOLE_PAGE
        self.refresh_after = refresh_after
        self.clock = clock
        self._heard: dict[str, tuple[bool, float]] = {}  # name -> (active, when)
        self._asking: dict[str, asyncio.Task] = {}

    def __deepcopy__(self, memo: dict) -> ProjectGate:
        # One gate for the hub: traitlets copies the config (and the hooks bound to this
        # gate) for every spawner; the copies must share what the gate heard.
        return self

    async def has_active_project(self, name: str) -> bool:
        """Ask the portal now (PortalUnavailable when it does not answer)."""
        try:
            active = await self.portal.standing(name)
        except PortalRefused as refusal:  # a name the portal cannot hold: no project
            log.warning("The portal refused the standing of %r: %s", name, refusal.message)
            active = False
        self._heard[name] = (active, self.clock())
        return active

    async def require_active_project(self, spawner: Any) -> None:
        """The pre-spawn step: refuse users without an active project (403)."""
        user = spawner.user
        if user.admin:
            return
        try:
            active = await self.has_active_project(user.name)
        except PortalUnavailable as error:
            log.warning("Project gate for %s: %s", user.name, error)
            raise web.HTTPError(503, UNAVAILABLE) from None
        if not active:
            raise NoProject(self.access_url)

    async def after_login(self, authenticator: Any, handler: Any, auth_model: dict) -> dict:
        """``Authenticator.post_auth_hook``: learn the user's standing for the landing page."""
        name = auth_model["name"]
        try:
            await self.has_active_project(name)
        except PortalUnavailable as error:
            self._heard.pop(name, None)  # unknown: JupyterHub's own landing, the start decides
            log.warning("Standing of %s after login unknown: %s", name, error)
        return auth_model

    def default_url(self, handler: Any) -> str:
        """``JupyterHub.default_url``: where each role lands after login; users without a
        project go to the access page.

        Operators (hub admins) land on the portal's operator console; an empty answer keeps
        JupyterHub's own default (start or open the user's server).
        """
        user = handler.current_user
        if user is None:
            return ""
        if user.admin:
            return self.console_url
        heard = self._heard.get(user.name)
        if heard is None or self.clock() - heard[1] > self.refresh_after:
            self._ask_soon(user.name)
        if heard is None:
            return ""
        return "" if heard[0] else self.access_url

    def _ask_soon(self, name: str) -> None:
        if name in self._asking:
            return

        async def ask() -> None:
            try:
                await self.has_active_project(name)
            except PortalUnavailable as error:
                log.warning("Standing of %s unknown: %s", name, error)
            finally:
                self._asking.pop(name, None)

        self._asking[name] = asyncio.get_running_loop().create_task(ask())
