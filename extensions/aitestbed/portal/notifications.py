"""Operators hear of new access requests: an e-mail through the site's SMTP relay and/or a
webhook, as the ``notifications`` settings say (nothing is sent when unset).

The message is built by pure functions (:func:`email_for`, :func:`webhook_body`); sending
happens on a small thread pool after the request is stored, so a relay that is down or slow
never makes the user's request fail or wait: the portal log says what was not sent.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage

from aitestbed.settings import Notifications, Settings, Smtp, Webhook

log = logging.getLogger("aitestbed.portal.notifications")


@dataclass(frozen=True)
class AccessRequested:
    """What operators are told about one new access request."""

    request_id: int
    user: str
    project: str | None
    reason: str
    requests_url: str  # the operators' Requests page
    site_name: str


def email_for(event: AccessRequested, smtp: Smtp) -> EmailMessage:
    message = EmailMessage()
    wanted = f"project {event.project}" if event.project else "a project"
    message["Subject"] = f"[{event.site_name}] Access request #{event.request_id} from {event.user}"
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.recipients)
    message.set_content(
        f"{event.user} asks for access to {wanted}.\n\n"
        f"What for:\n{event.reason}\n\n"
        f"Approve or decline it on the Requests page: {event.requests_url}\n"
    )
    return message


def webhook_body(event: AccessRequested) -> dict:
    wanted = f"project {event.project}" if event.project else "a project"
    return {
        "event": "access_request.created",
        "id": event.request_id,
        "user": event.user,
        "project": event.project,
        "reason": event.reason,
        "url": event.requests_url,
        "text": f"{event.user} asks for access to {wanted}: {event.requests_url}",
    }


def send_email(event: AccessRequested, smtp: Smtp) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as relay:
        if smtp.starttls:
            relay.starttls()
        if smtp.username:
            relay.login(smtp.username, os.environ.get(smtp.password_env, ""))
        relay.send_message(email_for(event, smtp))


def send_webhook(event: AccessRequested, webhook: Webhook) -> None:
    request = urllib.request.Request(  # noqa: S310 - http(s) only (schema)
        webhook.url,
        data=json.dumps(webhook_body(event)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=webhook.timeout_seconds) as answer:  # noqa: S310
        answer.read()


def notifications_set(settings: Settings) -> bool:
    notifications = settings.notifications
    return notifications.smtp is not None or notifications.webhook is not None


class Notifier:
    """Sends in the background; :meth:`access_requested` returns at once."""

    def __init__(self, settings: Notifications) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notify")

    def access_requested(self, event: AccessRequested) -> list[Future]:
        sent = []
        if self.settings.smtp is not None:
            sent.append(
                self._pool.submit(self._try, "e-mail", send_email, event, self.settings.smtp)
            )
        if self.settings.webhook is not None:
            sent.append(
                self._pool.submit(self._try, "webhook", send_webhook, event, self.settings.webhook)
            )
        return sent

    @staticmethod
    def _try(kind: str, send, event: AccessRequested, target) -> bool:
        try:
            send(event, target)
        except Exception as error:  # a relay down must not fail anything: log and go on
            log.warning(
                "Could not send the %s about access request #%d: %s", kind, event.request_id, error
            )
            return False
        log.info("Sent the %s about access request #%d", kind, event.request_id)
        return True
