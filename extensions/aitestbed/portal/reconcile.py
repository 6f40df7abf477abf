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


PAGE_LIMIT = 200  # the hub's default page size; the hub caps it at its own maximum
MAX_PAGES = 10_000


def next_offset(body: object) -> int | None:
    """The offset of the next page from a paginated hub answer; None on the last page."""
    if not isinstance(body, dict):
        return None
    following = (body.get("_pagination") or {}).get("next")
    return int(following["offset"]) if following else None


async def fetch_hub_users(api_url: str, token: str, *, limit: int = PAGE_LIMIT) -> list[dict]:
    """Every active user of the hub, page after page (the hub answers a page at a time).

    A user whose server stops between two pages moves everyone after them one place up,
    so one running user could fall between the pages; when the hub's count of active users
    changed while paging, the whole list is read again. Three changing reads in a row raise
    (this round closes nothing; the next one tries again).
    """
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient()
    base = f"{api_url.rstrip('/')}/users?state=active&limit={int(limit)}"
    headers = {
        "Authorization": f"token {token}",
        "Accept": "application/jupyterhub-pagination+json",
    }
    for _attempt in range(3):
        users: list[dict] = []
        totals: set[int] = set()
        offset: int | None = 0
        for _page in range(MAX_PAGES):
            response = await client.fetch(
                f"{base}&offset={offset}", headers=headers, request_timeout=30
            )
            body = json.loads(response.body)
            if not isinstance(body, dict):  # a hub that does not paginate: the whole list
                return body
            users.extend(body["items"])
            totals.add(int((body.get("_pagination") or {}).get("total", len(users))))
            following = next_offset(body)
            if following is None or following <= offset:
                break
            offset = following
        if len(totals) == 1:
            return users
    raise RuntimeError("the hub's active users kept changing while they were read")


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
