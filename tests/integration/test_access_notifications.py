"""Operators hear of new access requests: an e-mail reaches a real SMTP relay (aiosmtpd,
started here) and a JSON POST reaches a webhook, sent in the background by the real portal;
a relay that is down does not make a request fail. The hub's page shows operators the
pending count."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.harness import free_port, running_portal, wait_until

pytestmark = pytest.mark.integration

USERS = {"olivia": "olivia-pw", "nina": "nina-pw", "omar": "omar-pw"}


class Inbox:
    """aiosmtpd handler: keeps every message the relay accepts."""

    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture(scope="module")
def relay():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        with contextlib.suppress(AssertionError, RuntimeError):  # a test stopped it already
            controller.stop()


@pytest.fixture(scope="module")
def webhook():
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Content-Type"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/portal", received
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def portal(tmp_path_factory, relay, webhook):
    controller, _inbox = relay
    url, _received = webhook
    notifications = {
        "smtp": {
            "host": "127.0.0.1",
            "port": controller.port,
            "sender": "portal@example.org",
            "recipients": ["operators@example.org"],
            "timeout_seconds": 5,
        },
        "webhook": {"url": url, "timeout_seconds": 5},
    }
    with running_portal(
        tmp_path_factory.mktemp("notify"), USERS, sections={"notifications": notifications}
    ) as running:
        yield running


def _token(portal, name) -> str:
    session = portal.login(name, USERS[name])
    return session.post(
        f"{portal.url}/hub/api/users/{name}/tokens", json={"expires_in": 600}, timeout=30
    ).json()["token"]


def _ask(portal, name, reason):
    started = time.monotonic()
    answer = requests.post(
        f"{portal.portal_url}api/access-requests",
        json={"project": "acme-vision", "reason": reason},
        headers={"Authorization": f"token {_token(portal, name)}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json(), time.monotonic() - started


def test_a_new_request_reaches_the_relay_and_the_webhook(portal, relay, webhook):
    _controller, inbox = relay
    _url, received = webhook
    created, _took = _ask(portal, "nina", "Fine-tuning a vision model for defects")
    wait_until(lambda: inbox.messages and received, timeout=30, what="the notifications")
    ((recipients, mail),) = inbox.messages
    assert recipients == ["operators@example.org"]
    assert mail["From"] == "portal@example.org"
    assert mail["Subject"] == f"[Portal under test] Access request #{created['id']} from nina"
    text = mail.get_payload(decode=True).decode()
    assert "nina asks for access to project acme-vision." in text
    assert "Fine-tuning a vision model for defects" in text
    assert f"{portal.portal_url}requests" in text
    ((content_type, body),) = received
    assert content_type == "application/json"
    assert body == {
        "event": "access_request.created",
        "id": created["id"],
        "user": "nina",
        "project": "acme-vision",
        "reason": "Fine-tuning a vision model for defects",
        "url": f"{portal.portal_url}requests",
        "text": f"nina asks for access to project acme-vision: {portal.portal_url}requests",
    }

    # Operators see the pending count on the hub's own pages too.
    olivia = portal.login("olivia", USERS["olivia"])

    def hub_shows_count():
        home = olivia.get(f"{portal.url}/hub/home", timeout=30).text
        return 'id="hub-pending-requests"' in home and "1 access request pending</a>" in home

    wait_until(hub_shows_count, timeout=20, interval=0.5, what="the count on the hub page")


def test_a_relay_that_is_down_never_fails_a_request(portal, relay, webhook):
    controller, inbox = relay
    _url, received = webhook
    controller.stop()
    before = len(received)
    created, took = _ask(portal, "omar", "Speech recognition course project")
    assert took < 10, "the request does not wait for the relay"
    wait_until(lambda: len(received) > before, timeout=30, what="the webhook")
    assert received[-1][1]["id"] == created["id"]
    message = f"Could not send the e-mail about access request #{created['id']}"
    wait_until(lambda: message in portal.log(), timeout=30, what="the relay failure logged")
    assert len(inbox.messages) == 1
