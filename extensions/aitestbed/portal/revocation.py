"""Revocation that takes effect: sessions whose project access ended are warned, then stopped.

The decision is :func:`aitestbed.policy.revocation.plan_revocations` (pure); this module is
its edge. Every few seconds the portal reads its open session records with the user's
membership and the allocation's validity, records the warnings the plan asks for (the
user's pages show them, and the rows are the audit log of revocations), asks the hub to
stop the servers whose grace is over (the portal's service role holds ``delete:servers``)
and closes their usage records, so the project is charged no further. The next start of
the user is admitted without that project, so its dataset mounts are gone.

A membership removed by single sign-on (at login or at a token refresh), by an operator,
or an allocation that ended: all three are seen the same way, by the records, so no path
that changes memberships has to remember to call this.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from aitestbed.policy.revocation import OpenSession, Revocation, plan_revocations
from aitestbed.portal import ledger, models
from aitestbed.portal.db import transaction

log = logging.getLogger("aitestbed.portal.revocation")
# Notices of the last day stay on the user's pages (after the stop they say why).
NOTICE_DAYS = 1


def open_sessions(session: Session, now: datetime) -> list[OpenSession]:
    """Every open session record with what the decision needs."""
    today = now.date()
    rows = session.execute(
        select(
            models.SessionRecord.id,
            models.User.name,
            models.SessionRecord.server_name,
            models.Project.slug,
            models.Project.valid_from,
            models.Project.valid_until,
            models.Membership.id,
            models.SessionRevocation.warned_at,
        )
        .join(models.User, models.User.id == models.SessionRecord.user_id)
        .join(models.Project, models.Project.id == models.SessionRecord.project_id)
        .outerjoin(
            models.Membership,
            and_(
                models.Membership.user_id == models.SessionRecord.user_id,
                models.Membership.project_id == models.SessionRecord.project_id,
            ),
        )
        .outerjoin(
            models.SessionRevocation,
            and_(
                models.SessionRevocation.session_id == models.SessionRecord.id,
                models.SessionRevocation.rescinded_at.is_(None),
            ),
        )
        .where(models.SessionRecord.stopped_at.is_(None))
    ).all()
    return [
        OpenSession(
            record_id=rid,
            user=user,
            server_name=server,
            project=slug,
            member=membership is not None,
            allocation_valid=valid_from <= today <= valid_until,
            warned_at=_aware(warned_at),
        )
        for rid, user, server, slug, valid_from, valid_until, membership, warned_at in rows
    ]


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; they were written in UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def record_warnings(session: Session, warnings: tuple[Revocation, ...], now: datetime) -> None:
    for item in warnings:
        existing = session.scalar(
            select(models.SessionRevocation).where(
                models.SessionRevocation.session_id == item.record_id
            )
        )
        row = existing or models.SessionRevocation(session_id=item.record_id)
        row.user, row.project, row.server_name = item.user, item.project, item.server_name
        row.code, row.reason = item.code, item.reason
        row.warned_at, row.stop_at = now, item.stop_at
        row.stopped_at = row.rescinded_at = None
        session.add(row)
        log.warning(
            "Access to project %s ended for %s (%s): server %r warned, stopped at %s",
            item.project,
            item.user,
            item.code,
            item.server_name,
            item.stop_at.isoformat(timespec="seconds"),
        )


def rescind(session: Session, record_ids: tuple[int, ...], now: datetime) -> None:
    for row in session.scalars(
        select(models.SessionRevocation).where(
            models.SessionRevocation.session_id.in_(record_ids),
            models.SessionRevocation.rescinded_at.is_(None),
        )
    ):
        row.rescinded_at = now
        log.info("Access to project %s is back for %s: warning rescinded", row.project, row.user)


def close_revoked(session: Session, record_id: int, now: datetime) -> None:
    """Close the usage record (charged up to now, through the ledger, exactly once: the
    hub's own post-stop close may race this one) and mark the revocation carried out."""
    ledger.stop_session(session, record_id, now)
    notice = session.scalar(
        select(models.SessionRevocation).where(models.SessionRevocation.session_id == record_id)
    )
    if notice is not None and notice.stopped_at is None:
        notice.stopped_at = now


class HubServers:
    """The one thing the enforcer needs from the hub: stop a user's server."""

    def __init__(self, api_url: str, token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token

    async def stop(self, user: str, server_name: str) -> None:
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        path = f"/users/{quote(user, safe='')}/server"
        if server_name:
            path = f"/users/{quote(user, safe='')}/servers/{quote(server_name, safe='')}"
        try:
            await AsyncHTTPClient().fetch(
                self.api_url + path,
                method="DELETE",
                headers={"Authorization": f"token {self.token}"},
                request_timeout=60,
            )
        except HTTPClientError as error:
            if error.code not in (400, 404):  # 400/404: not running (any more)
                raise


async def enforce_once(sessions, hub: HubServers, now: datetime, grace: timedelta) -> list[int]:
    """One round: warn, rescind, stop. Returns the record ids stopped."""
    with transaction(sessions) as session:
        plan = plan_revocations(open_sessions(session, now), now, grace)
        record_warnings(session, plan.warn, now)
        rescind(session, plan.rescind, now)
    stopped = []
    for item in plan.stop:
        try:
            await hub.stop(item.user, item.server_name)
        except Exception as error:  # the hub may be restarting: the next round tries again
            log.warning("Could not stop %s's server %r: %s", item.user, item.server_name, error)
            continue
        with transaction(sessions) as session:
            close_revoked(session, item.record_id, datetime.now(UTC))
        log.warning(
            "Stopped %s's server %r: access to project %s ended (%s)",
            item.user,
            item.server_name,
            item.project,
            item.code,
        )
        stopped.append(item.record_id)
    return stopped


def check_interval(grace_seconds: float) -> float:
    """How often to look: a fifth of the grace, between 1 s and 30 s."""
    return min(30.0, max(1.0, grace_seconds / 5))


async def revoke_forever(sessions, hub: HubServers, grace_seconds: float) -> None:
    grace = timedelta(seconds=grace_seconds)
    interval = check_interval(grace_seconds)
    while True:
        try:
            await enforce_once(sessions, hub, datetime.now(UTC), grace)
        except Exception as error:  # database busy or hub away: the next round tries again
            log.warning("Could not check sessions for revoked access: %s", error)
        await asyncio.sleep(interval)


def notices_for(session: Session, user: str, now: datetime) -> list[models.SessionRevocation]:
    """The user's revocation notices of the last day (pending first, newest first)."""
    since = now - timedelta(days=NOTICE_DAYS)
    rows = session.scalars(
        select(models.SessionRevocation)
        .where(
            models.SessionRevocation.user == user,
            models.SessionRevocation.rescinded_at.is_(None),
            models.SessionRevocation.warned_at >= since,
        )
        .order_by(models.SessionRevocation.warned_at.desc())
        .limit(20)
    ).all()
    return sorted(rows, key=lambda r: r.stopped_at is not None)


def revocation_log(
    session: Session, user: str | None, limit: int = 500
) -> list[models.SessionRevocation]:
    """The audit log of revocations, newest first; ``user`` None: everyone's."""
    query = select(models.SessionRevocation).order_by(models.SessionRevocation.id.desc())
    if user is not None:
        query = query.where(models.SessionRevocation.user == user)
    return list(session.scalars(query.limit(limit)))
