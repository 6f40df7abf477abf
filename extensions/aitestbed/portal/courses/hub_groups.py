"""Keep the hub's course groups in line with the portal's rosters.

The hub creates each settings course's two groups, ``course.<slug>`` and ``staff.<slug>``,
with the staff role when it starts (``hub/course_rbac.py``). Joins, roster imports and
removals happen in the portal afterwards; this task adds and removes group members through
the hub's groups API, with the portal's scopes limited to exactly these groups. A person
the hub does not know yet (never logged in) is added at the first round after their first
login. A course whose groups the hub does not have (made through the API after the hub
started) is skipped with one log line: its staff get hub rights after a hub restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.portal import models

log = logging.getLogger("aitestbed.portal.courses")
STAFF = ("instructor", "assistant")


def wanted_groups(rows: Iterable[tuple[str, str, str]]) -> dict[str, set[str]]:
    """(course slug, user, course role) rows -> {hub group: members} (pure)."""
    groups: dict[str, set[str]] = {}
    for slug, user, role in rows:
        groups.setdefault(f"course.{slug}", set()).add(user)
        staff = groups.setdefault(f"staff.{slug}", set())
        if role in STAFF:
            staff.add(user)
    return groups


def roster_rows(session: Session) -> list[tuple[str, str, str]]:
    rows = session.execute(
        select(models.Project.slug, models.User.name, models.Membership.course_role)
        .join(models.Membership, models.Membership.project_id == models.Project.id)
        .join(models.User, models.User.id == models.Membership.user_id)
        .where(models.Project.kind == "course", models.Membership.course_role.is_not(None))
    ).all()
    courses = session.scalars(select(models.Project.slug).where(models.Project.kind == "course"))
    # A course with nobody left still has (empty) groups to keep in line.
    return [*(tuple(r) for r in rows), *((slug, "", "") for slug in courses)]


async def sync_groups(wanted: dict[str, set[str]], api_url: str, token: str) -> dict[str, int]:
    """Add and remove members so each hub group holds exactly its wanted members (as far
    as the hub knows them); returns how many changes each group had."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    client = AsyncHTTPClient()
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    base = api_url.rstrip("/")
    changes: dict[str, int] = {}
    for group, members in sorted(wanted.items()):
        members = {m for m in members if m}
        url = f"{base}/groups/{quote(group, safe='')}"
        try:
            response = await client.fetch(url, headers=headers, request_timeout=30)
        except HTTPClientError as error:
            if error.code in (403, 404):
                log.info("The hub has no group %s (a course added after it started).", group)
                continue
            raise
        current = set(json.loads(response.body).get("users", []))
        removed, added = current - members, members - current
        if removed:
            await client.fetch(
                f"{url}/users",
                method="DELETE",
                headers=headers,
                body=json.dumps({"users": sorted(removed)}),
                allow_nonstandard_methods=True,
                request_timeout=30,
            )
        done = 0
        for user in sorted(added):  # one by one: someone who never logged in is skipped
            try:
                await client.fetch(
                    f"{url}/users",
                    method="POST",
                    headers=headers,
                    body=json.dumps({"users": [user]}),
                    request_timeout=30,
                )
                done += 1
            except HTTPClientError as error:
                if error.code != 400:
                    raise
        changes[group] = len(removed) + done
    return changes


async def sync_forever(sessions, api_url: str, token: str, interval: float) -> None:
    """Sync now and every ``interval`` seconds; the hub may be restarting: log and retry."""
    while True:
        try:
            with sessions() as session:
                wanted = wanted_groups(roster_rows(session))
            changed = await sync_groups(wanted, api_url, token)
            if any(changed.values()):
                log.info("Course groups brought in line with the rosters: %s", changed)
        except Exception as error:
            log.warning("Could not sync the course groups with the hub: %s", error)
        await asyncio.sleep(interval)
