"""The hub's client of the portal's internal API (admission and session records)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class PortalUnavailable(Exception):
    """The portal service did not answer; the start cannot be admitted now."""


class PortalRefused(Exception):
    """The portal refused the request; ``message`` is meant for the user."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class HubPortalClient:
    def __init__(self, base_url: str, token: str, timeout: float = 20.0) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token
        self.timeout = timeout

    async def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        request = HTTPRequest(
            self.base_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else None,
            request_timeout=self.timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            if error.response is None or error.code >= 500:
                raise PortalUnavailable(f"the portal answered {error.code}") from None
            raise PortalRefused(error.code, *_detail(error.response.body)) from None
        except OSError as error:
            raise PortalUnavailable(str(error)) from None
        return json.loads(response.body)

    async def spawn_context(self, user: str) -> dict[str, Any]:
        return await self._call("GET", f"api/internal/spawn-context/{quote(user, safe='')}")

    async def start_session(self, **fields: str) -> dict[str, Any]:
        return await self._call("POST", "api/internal/sessions", fields)

    async def stop_session(self, record_id: int) -> dict[str, Any]:
        return await self._call("POST", f"api/internal/sessions/{int(record_id)}/stop", {})


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
