"""The portal's last word on a request that failed: a JSON 500 on a connection kept open.

Starlette answers an unhandled exception with a 500 and then raises it again to the server;
uvicorn, seeing an exception after the answer started, closes the connection without
saying so (no ``Connection: close``). The proxy keeps its connections to the portal alive
and may already have sent the next request, of any user, on that connection: that request
then failed with a reset (503 at the proxy). This middleware sits inside Starlette's error
layer and ends every failure itself, so nothing reaches the server and the connection
stays usable. A failure after the answer started cannot be told to the client any more;
it is raised on, and the server closes that connection, which is then the honest thing.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("aitestbed.portal")

SERVER_ERROR_DETAIL = (
    "The portal failed on this request (the error is in its log); try again, and tell the "
    "operators if it keeps failing."
)


class ServerErrorAnswer:
    """Pure ASGI middleware: an exception becomes ``500 {"detail": ...}``, logged once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            if started:
                raise
            log.exception("Unhandled error on %s %s", scope.get("method"), scope.get("path"))
            body = json.dumps({"detail": SERVER_ERROR_DETAIL}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
