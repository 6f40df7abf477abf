"""Which running sessions lose their access, and when they are stopped: one pure function.

A session is charged to one project. It keeps running only while its user is still a
member of that project and the project's allocation is valid. When either ends (single
sign-on removed the membership at a login or a token refresh, an operator removed it, the
allocation expired), the user is warned first and the session is stopped ``grace`` later.
Access given back during the grace (the membership restored) rescinds the warning.

The portal's enforcer (``aitestbed.portal.revocation``) reads the open sessions, calls
:func:`plan_revocations`, and does what the plan says: it records the warnings, asks the
hub to stop the servers, and closes their usage records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

MEMBERSHIP_REMOVED = "membership-removed"
ALLOCATION_ENDED = "allocation-ended"


@dataclass(frozen=True)
class OpenSession:
    """A running session as the portal's records see it."""

    record_id: int
    user: str
    server_name: str
    project: str
    member: bool  # the user still belongs to the project
    allocation_valid: bool  # the project's allocation is valid today
    warned_at: datetime | None = None  # when the user was warned (an open notice), if ever


@dataclass(frozen=True)
class Revocation:
    """One session that loses its project: why, and when it is (or was to be) stopped."""

    record_id: int
    user: str
    server_name: str
    project: str
    code: str
    reason: str
    stop_at: datetime


@dataclass(frozen=True)
class RevocationPlan:
    warn: tuple[Revocation, ...] = ()  # newly losing access: warn now, stop at stop_at
    stop: tuple[Revocation, ...] = ()  # warned and the grace is over: stop now
    rescind: tuple[int, ...] = ()  # record ids whose access came back during the grace


def lost_access(session: OpenSession) -> tuple[str, str] | None:
    """(code, one sentence for the user) when the session's project access ended, else None."""
    if not session.member:
        return (
            MEMBERSHIP_REMOVED,
            f"You are no longer a member of project {session.project}, so its session "
            "is being stopped; ask the project's manager or an operator if this is a mistake.",
        )
    if not session.allocation_valid:
        return (
            ALLOCATION_ENDED,
            f"The allocation of project {session.project} has ended, so its session is "
            "being stopped; ask an operator to extend the allocation.",
        )
    return None


def plan_revocations(
    sessions: Iterable[OpenSession], now: datetime, grace: timedelta
) -> RevocationPlan:
    """What to do with each open session at ``now``, given a warning ``grace``."""
    warn: list[Revocation] = []
    stop: list[Revocation] = []
    rescind: list[int] = []
    for session in sessions:
        lost = lost_access(session)
        if lost is None:
            if session.warned_at is not None:
                rescind.append(session.record_id)
            continue
        warned_at = session.warned_at or now
        revocation = Revocation(
            record_id=session.record_id,
            user=session.user,
            server_name=session.server_name,
            project=session.project,
            code=lost[0],
            reason=lost[1],
            stop_at=warned_at + grace,
        )
        if session.warned_at is None:
            warn.append(revocation)
        if revocation.stop_at <= now:
            stop.append(revocation)
    return RevocationPlan(tuple(warn), tuple(stop), tuple(rescind))
