"""No active project, no server: the hub's check before a start, and where such a user lands.

A user who can log in but belongs to no project with a valid allocation (a new single
sign-on user, or one whose project expired) is sent to the portal's access page instead of
a server, and a start asked for any other way (the REST API, a bookmarked /hub/spawn) is
refused with the same explanation. Operators (hub admins) are never held here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from tornado import web

from aitestbed.hub.portal_db import in_portal_db, user_has_active_project
from aitestbed.hub.spawn_form import ACCESS_PAGE
from aitestbed.portal.directory import has_active_project

CONSOLE_PAGE = "services/portal/console"


def no_project_message(access_url: str) -> str:
    return (
        "You belong to no active project yet, so no server can start. "
        f"Ask for access at {access_url} - you can start one once an operator approves."
    )


def make_pre_spawn_hook(database_url: str, base_url: str = "/") -> Callable[[Any], Any]:
    """A ``Spawner.pre_spawn_hook`` that refuses users without an active project."""
    access_url = base_url + ACCESS_PAGE

    async def require_active_project(spawner) -> None:
        user = spawner.user
        if user.admin:
            return
        today = date.today()
        if not await in_portal_db(database_url, lambda s: has_active_project(s, user.name, today)):
            raise web.HTTPError(403, no_project_message(access_url))

    return require_active_project


def make_default_url(database_url: str, base_url: str = "/") -> Callable[[Any], str]:
    """A ``JupyterHub.default_url`` callable: where each role lands after login.

    Operators (hub admins) land on the portal's operator console, users without a project
    on the access page; an empty answer keeps JupyterHub's own default (the spawn page, or
    the user's running server).
    """
    access_url = base_url + ACCESS_PAGE
    console_url = base_url + CONSOLE_PAGE

    def default_url(handler) -> str:
        user = handler.current_user
        if user is None:
            return ""
        if user.admin:
            return console_url
        # A single indexed query; JupyterHub calls this synchronously.
        return "" if user_has_active_project(database_url, user.name) else access_url

    return default_url
