"""The hub's client of the portal's internal API: the one way the hub reaches the portal.

The hub never imports the portal's code or opens its database (a test keeps it so); it
asks the portal service over HTTP with the portal's own API token:

- admission and usage records (:meth:`HubPortalClient.spawn_context`,
  :meth:`~HubPortalClient.start_session`, :meth:`~HubPortalClient.stop_session`);
- the directory (:meth:`~HubPortalClient.standing`: does a user have an active project?,
  :meth:`~HubPortalClient.apply_sso_grants`: what single sign-on granted at a login).

Transport, so that a class starting at once does not fail on the hub's own plumbing:

- one HTTP client per portal URL and size (:func:`shared_client`), apart from the hub's
  default client (the proxy's API calls and the hub's other requests keep theirs);
- at most ``max_connections`` requests in flight; the others wait for a free connection up
  to ``queue_timeout`` seconds, and that wait is not part of ``request_timeout``, which
  bounds one request once it is sent;
- a request that never reached the portal (connection refused) or that the portal answered
  with 503 is retried with a growing pause; a request that may have reached it (a timeout,
  a connection lost mid-way) is retried only when repeating it is harmless;
- whatever still fails is :class:`PortalUnavailable`, for which the callers have one
  sentence for the user; a refusal by the portal (4xx) is :class:`PortalRefused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

DEFAULT_CONNECTIONS = 20
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_QUEUE_TIMEOUT = 120.0


class PortalUnavailable(Exception):
    """The portal service did not answer in time (down, or too busy); nothing to show the
    user as is: callers say in one sentence what could not be checked."""


class PortalRefused(Exception):
    """The portal refused the request; ``message`` is meant for the user."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class _TryAgain(Exception):
    """One attempt failed in a way that a later attempt may not."""

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.sent = sent  # the portal may have acted on it


class HubPortalClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        max_connections: int = DEFAULT_CONNECTIONS,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.25,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token
        self.max_connections = max(1, int(max_connections))
        self.request_timeout = request_timeout
        self.queue_timeout = queue_timeout
        self.retries = retries
        self.backoff = backoff
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: AsyncHTTPClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def __deepcopy__(self, memo: dict) -> HubPortalClient:
        return self  # shared by design (one pool per portal); config copies must share it

    def _transport(self) -> tuple[AsyncHTTPClient, asyncio.Semaphore]:
        """This loop's HTTP client and connection slots (made on first use in the loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._http is None or self._slots is None:
            # Our own instance: the hub's shared default client allows 10 connections and
            # counts the wait in its queue against each request's timeout.
            self._http = AsyncHTTPClient(force_instance=True, max_clients=self.max_connections)
            self._slots = asyncio.Semaphore(self.max_connections)
            self._loop = loop
        return self._http, self._slots

    async def _call(
        self, method: str, path: str, body: dict | None = None, *, repeatable: bool = True
    ) -> Any:
        """One request, retried as the module docstring says; ``repeatable``: doing it twice
        is harmless (reads, and writes that set a state)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.queue_timeout
        pause = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return await self._attempt(method, path, body, give_up)
            except _TryAgain as failure:
                last = attempt == self.retries
                if last or (failure.sent and not repeatable) or loop.time() + pause > give_up:
                    raise PortalUnavailable(f"{method} {path}: {failure}") from None
            await asyncio.sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, method: str, path: str, body: dict | None, give_up: float) -> Any:
        http, slots = self._transport()
        wait = give_up - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(slots.acquire(), timeout=max(wait, 0))
        except TimeoutError:
            raise PortalUnavailable(
                f"{method} {path}: no connection to the portal was free for "
                f"{self.queue_timeout:g} s"
            ) from None
        try:
            response = await http.fetch(
                HTTPRequest(
                    self.base_url + path,
                    method=method,
                    headers={
                        "Authorization": f"token {self.token}",
                        "Content-Type": "application/json",
                    },
                    body=json.dumps(body) if body is not None else None,
                    connect_timeout=min(10.0, self.request_timeout),
                    request_timeout=self.request_timeout,
                ),
                raise_error=False,
            )
        except ConnectionRefusedError as error:
            raise _TryAgain(str(error), sent=False) from None
        except (OSError, HTTPClientError) as error:  # timeout, connection lost mid-way
            raise _TryAgain(str(error), sent=True) from None
        finally:
            slots.release()
        return _answer(response)

    # -- admission and usage records --------------------------------------------------------

    async def spawn_context(self, user: str) -> dict[str, Any]:
        return await self._call("GET", f"api/internal/spawn-context/{quote(user, safe='')}")

    async def start_session(self, **fields: str) -> dict[str, Any]:
        return await self._call("POST", "api/internal/sessions", fields, repeatable=False)

    async def stop_session(self, record_id: int) -> dict[str, Any]:
        return await self._call("POST", f"api/internal/sessions/{int(record_id)}/stop", {})

    # -- the directory ----------------------------------------------------------------------

    async def standing(self, user: str) -> bool:
        """Whether ``user`` belongs to a project whose allocation is valid today."""
        answer = await self._call("GET", f"api/internal/users/{quote(user, safe='')}/standing")
        return bool(answer["active_project"])

    async def notices(self, user: str) -> dict[str, Any]:
        """What the hub's pages tell ``user``: active project, revocation warnings, and
        the pending access requests (the hub shows the count to operators only)."""
        return await self._call("GET", f"api/internal/users/{quote(user, safe='')}/notices")

    async def apply_sso_grants(
        self, user: str, *, instructor: bool, projects: Iterable[tuple[str, str]]
    ) -> dict[str, list[str]]:
        """Make ``user``'s single sign-on memberships exactly ``projects`` ((slug, role)).

        Returns what changed (``added``, ``removed``, ``updated`` project slugs) and the
        hub groups of the user's courses (``course_groups``)."""
        answer = await self._call(
            "PUT",
            f"api/internal/users/{quote(user, safe='')}/sso-grants",
            {
                "instructor": instructor,
                "projects": [{"project": slug, "role": role} for slug, role in projects],
            },
        )
        return {
            key: answer.get(key, []) for key in ("added", "removed", "updated", "course_groups")
        }


@functools.cache
def shared_client(
    base_url: str,
    token: str,
    max_connections: int = DEFAULT_CONNECTIONS,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
) -> HubPortalClient:
    """The hub's one client per portal and settings, so all its callers share the limit."""
    return HubPortalClient(
        base_url,
        token,
        max_connections=max_connections,
        request_timeout=request_timeout,
        queue_timeout=queue_timeout,
    )


def _answer(response: HTTPResponse) -> Any:
    if response.code == 503:
        raise _TryAgain("the portal answered 503", sent=False)
    if response.code >= 500 or response.code == 599:
        raise PortalUnavailable(f"the portal answered {response.code}")
    if response.code >= 400:
        raise PortalRefused(response.code, *_detail(response.body or b""))
    with contextlib.suppress(ValueError):
        return json.loads(response.body)
    raise PortalUnavailable(f"the portal answered {response.code} with no JSON")


def _detail(body: bytes) -> tuple[str, str]:
    try:
        answer = json.loads(body)
        detail = answer.get("detail")
    except (ValueError, AttributeError):
        return "The portal refused the request.", ""
    if isinstance(answer.get("errors"), list):  # the request's schema refused it
        fields = ", ".join(str(e.get("field", "")) for e in answer["errors"])
        return f"Invalid session options: {fields}.", "invalid"
    if isinstance(detail, dict):
        return str(detail.get("message", "")), str(detail.get("code", ""))
    return str(detail), ""
