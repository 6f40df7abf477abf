"""A stand-in for ``jupyterhub-singleuser``, so that a hundred sessions fit on a small machine.

What it stands in for: the process the local spawner starts for a session. It reads what the
hub gives every single-user server (``JUPYTERHUB_SERVICE_URL``: where to listen, with the
server's own prefix ``/user/<name>/``), listens there, and answers every GET under its prefix
with 200 (so the hub's readiness checks, ``PolicySpawnerMixin.wait_until_serving`` and the
hub's own, see this server and no other); anything outside its prefix is 404. It exits on
SIGTERM (the hub's stop) and when its parent (the hub) is gone, so it never outlives a test.

What it does not do or check: no JupyterLab, no kernels, no token or OAuth check of the
caller, no activity reports to the hub, no ``~/project`` or dataset use. A test with it
measures the hub, the proxy and the portal (admission, start queue, usage records), not the
cost of starting JupyterLab (see bench/ for that). It imports only the standard library and
is run with ``python -I -S`` (about 10 MB, 50 ms to start).

Run as a program: ``python -I -S singleuser_standin.py [any arguments, ignored]``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

PROGRAM = Path(__file__).resolve()


def command() -> list[str]:
    """``Spawner.cmd`` for the hub: this file, with the hub's Python, isolated."""
    return [sys.executable, "-I", "-S", str(PROGRAM)]


def hub_config_lines() -> str:
    """JupyterHub configuration lines (after the portal's own) that start this stand-in."""
    return f"c.Spawner.cmd = {command()!r}\nc.Spawner.args = []\nc.Spawner.default_url = ''\n"


def _handler(prefix: str) -> type[BaseHTTPRequestHandler]:
    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            ours = self.path.startswith(prefix)
            body = b'{"stand_in": true}' if ours else b'{"message": "not this server"}'
            self.send_response(200 if ours else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    return Answer


def _leave_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def main() -> None:
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or url.path or "/"
    server = ThreadingHTTPServer((url.hostname or "127.0.0.1", url.port or 80), _handler(prefix))
    server.daemon_threads = True
    threading.Thread(target=_leave_with_parent, args=(os.getppid(),), daemon=True).start()
    server.serve_forever(poll_interval=1)


if __name__ == "__main__":
    main()
