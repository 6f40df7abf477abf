"""Close usage records of sessions that are no longer running.

The hub closes a record when a session stops. If a session ends while the hub or the
portal is down (a crash, a node lost), its record would stay open and keep charging; so the
portal compares its open records with the servers the hub reports, at start and then
periodically, and closes the ones the hub no longer runs. GPU-hours are charged up to the
moment the portal noticed, which is the honest upper bound it knows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.portal import ledger, models
from aitestbed.portal.db import transaction

log = logging.getLogger("aitestbed.portal.reconcile")


def stale_records(
    open_records: Iterable[tuple[int, str, str]], running: set[tuple[str, str]]
) -> list[int]:
    """Ids of open records (id, user, server name) whose server is not running."""
    return [rid for rid, user, server in open_records if (user, server) not in running]


def running_servers(users: list[dict]) -> set[tuple[str, str]]:
    """(user, server name) pairs from the hub's users list (started or starting)."""
    return {(u["name"], name) for u in users for name in (u.get("servers") or {})}


def close_stale(session: Session, running: set[tuple[str, str]], now: datetime) -> list[int]:
    rows = session.execute(
        select(models.SessionRecord.id, models.User.name, models.SessionRecord.server_name)
        .join(models.User, models.User.id == models.SessionRecord.user_id)
        .where(models.SessionRecord.stopped_at.is_(None))
    ).all()
    stale = stale_records(((r[0], r[1], r[2]) for r in rows), running)
    # Through the ledger: a record the hub closed meanwhile is not charged twice.
    return ledger.close_sessions(session, stale, now)


async def fetch_hub_users(api_url: str, token: str) -> list[dict]:
    from tornado.httpclient import AsyncHTTPClient

    response = await AsyncHTTPClient().fetch(
        f"{api_url.rstrip('/')}/users?state=active",
        headers={
            "Authorization": f"token {token}",
            "Accept": "application/jupyterhub-pagination+json",
        },
        request_timeout=30,
    )
    body = json.loads(response.body)
    return body["items"] if isinstance(body, dict) else body


async def reconcile_forever(sessions, api_url: str, token: str, interval: float) -> None:
    """Reconcile now and then every ``interval`` seconds; errors are logged and retried."""
    while True:
        try:
            running = running_servers(await fetch_hub_users(api_url, token))
            with transaction(sessions) as session:
                closed = close_stale(session, running, datetime.now(UTC))
            if closed:
                log.info("Closed %d usage records of sessions no longer running", len(closed))
        except Exception as error:  # the hub may be restarting; try again later
            log.warning("Could not reconcile usage records with the hub: %s", error)
        await asyncio.sleep(interval)
