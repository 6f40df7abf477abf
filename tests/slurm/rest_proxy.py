"""A small HTTP proxy the tests put between the portal and the real slurmrestd.

It counts every request (method, path, Slurm user) and lets a test act at chosen points of
a submission (``POST .../job/submit``):

- ``before_submit``: called when the submission arrived, before it is forwarded (a test
  kills slurmrestd or slurmctld there: the request is "in flight");
- ``after_submit``: called when Slurm has answered, before the answer is relayed (a test
  kills a daemon there: Slurm accepted the job, the portal has not heard);
- ``submit_answer``: ``"relay"`` (default), ``"hold"`` (forward the submission, then keep
  the connection without an answer until the client gives up on its timeout) or
  ``"hang-up"`` (forward it, then close the connection without an answer).

When the upstream cannot be reached the proxy hangs up without an answer, as a dead
slurmrestd behind a load balancer would. It checks nothing else and changes no byte.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SUBMIT_SUFFIX = "/job/submit"


class RestProxy:
    def __init__(self, upstream_url: str, *, hold_seconds: float = 30.0) -> None:
        target = urlsplit(upstream_url)
        self.upstream = (target.hostname, target.port)
        self.hold_seconds = hold_seconds
        self.requests: list[tuple[str, str, str]] = []
        self.submissions_forwarded = 0
        self.before_submit: Callable[[], None] | None = None
        self.after_submit: Callable[[], None] | None = None
        self.submit_answer = "relay"
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RestProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.submissions_forwarded = 0
        self.before_submit = self.after_submit = None
        self.submit_answer = "relay"

    def submits(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return [r for r in self.requests if r[1].endswith(SUBMIT_SUFFIX)]

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes):
        connection = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), response.read()
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                user = self.headers.get("X-SLURM-USER-NAME", "")
                is_submit = self.command == "POST" and self.path.endswith(SUBMIT_SUFFIX)
                with proxy._lock:
                    proxy.requests.append((self.command, self.path, user))
                if is_submit and proxy.before_submit:
                    proxy.before_submit()
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "connection", "content-length")
                }
                try:
                    status, content_type, answer = proxy._forward(
                        self.command, self.path, headers, body
                    )
                except OSError:
                    self.close_connection = True
                    return  # upstream gone: hang up without an answer
                if is_submit:
                    with proxy._lock:
                        proxy.submissions_forwarded += 1
                    if proxy.after_submit:
                        proxy.after_submit()
                    if proxy.submit_answer != "relay":
                        if proxy.submit_answer == "hold":
                            time.sleep(proxy.hold_seconds)  # the client times out meanwhile
                        self.close_connection = True
                        return
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer)
                self.close_connection = True

            do_GET = do_POST = do_DELETE = _any

        return Handler
