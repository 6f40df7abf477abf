"""JSON bodies with NaN, Infinity or a number beyond a float are refused before any route.

Python's JSON parser accepts ``NaN``, ``Infinity`` and ``1e999`` (an infinity), none of
which is JSON. Let through, they reach models that accept floats and documents validated by
JSON Schema (where NaN passes every bound), are stored, and then no answer that holds them
can be written. :class:`FiniteJsonBodies` reads a JSON request body once, and a body holding
such a number is a 422 in the portal's error shape naming the field; any other body goes on
unchanged (a body that is not JSON at all is left to the route's own parsing).
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aitestbed.portal.errors import join_field, validation_problem


class _NotFinite:
    """Stands for a non-finite number in the parsed body, so its place can be named."""


NOT_FINITE = _NotFinite()
MESSAGE = "must be a finite number (NaN and Infinity are not JSON)"


def _float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else NOT_FINITE


def first_non_finite(body: bytes) -> str | None:
    """The field of the first non-finite number in the JSON ``body``; None when it has none
    or is not JSON (the route then answers as it would)."""
    try:
        document = json.loads(body, parse_constant=lambda _name: NOT_FINITE, parse_float=_float)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[tuple[Any, ...], Any]] = [((), document)]
    while stack:  # depth-first, in document order
        where, value = stack.pop()
        if value is NOT_FINITE:
            return join_field(where)
        if isinstance(value, dict):
            stack.extend(reversed([((*where, k), v) for k, v in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([((*where, i), v) for i, v in enumerate(value)]))
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class FiniteJsonBodies:
    """ASGI middleware: refuse JSON bodies with non-finite numbers (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        field = first_non_finite(body)
        if field is not None:
            await _answer_422(send, field)
            return
        whole: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _answer_422(send: Send, field: str) -> None:
    body = json.dumps(validation_problem([{"loc": (field,), "msg": MESSAGE}])).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
