"""What the hub's pages tell a user about their access: the portal's notices, kept fresh.

The hub's templates get ``portal_notices`` (``JupyterHub.template_vars``, a callable of the
user): whether the user has an active project, the revocation warnings of their running
sessions, and for operators the count of pending access requests. A template is rendered
synchronously, so the answer comes from what the board last heard; a stale or missing entry
is asked for in the background (as :class:`aitestbed.hub.project_gate.ProjectGate` does),
and the next page shows it. The portal's own pages read the same facts directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aitestbed.hub.portal_client import HubPortalClient, PortalRefused, PortalUnavailable

log = logging.getLogger("aitestbed.notices")
NOTHING: dict[str, Any] = {"active_project": None, "revocations": [], "pending_requests": 0}


class NoticeBoard:
    def __init__(
        self,
        portal: HubPortalClient,
        *,
        refresh_after: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.portal = portal
        self.refresh_after = refresh_after
        self.clock = clock
        self._heard: dict[str, tuple[dict[str, Any], float]] = {}
        self._asking: dict[str, asyncio.Task] = {}

    def __deepcopy__(self, memo: dict) -> NoticeBoard:
        return self  # one board for the hub (traitlets copies config values)

    def __call__(self, user: Any) -> dict[str, Any]:
        """The template variable: the last answer for ``user`` (asks again when stale)."""
        if user is None or not getattr(user, "name", None):
            return NOTHING
        heard = self._heard.get(user.name)
        if heard is None or self.clock() - heard[1] > self.refresh_after:
            self._ask_soon(user.name)
        return heard[0] if heard else NOTHING

    async def ask(self, name: str) -> dict[str, Any]:
        answer = await self.portal.notices(name)
        self._heard[name] = (answer, self.clock())
        return answer

    def _ask_soon(self, name: str) -> None:
        if name in self._asking:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def ask() -> None:
            try:
                await self.ask(name)
            except (PortalUnavailable, PortalRefused) as error:
                log.debug("Notices of %s unknown: %s", name, error)
            finally:
                self._asking.pop(name, None)

        self._asking[name] = loop.create_task(ask())
