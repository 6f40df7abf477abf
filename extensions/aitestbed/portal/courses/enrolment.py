"""Who is in a course: join codes (with an exact maximum of uses under concurrency),
roster imports (all rows or none), removal (the membership ends; files are kept)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aitestbed.portal import models
from aitestbed.portal.courses.roster import RosterRow
from aitestbed.portal.courses.store import enrol

# No 0/O, 1/I/L: a code read aloud in a classroom or copied from a slide survives.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
MAX_CODE_USES = 10_000
MAX_CODE_HOURS = 24 * 366


class EnrolmentRefused(Exception):
    """A join or removal the portal refuses: HTTP status, a code, and one sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def normalise_code(text: str) -> str:
    """What a person types ('abcd-efgh', 'ABCD EFGH') as the stored code."""
    return "".join(ch for ch in text.upper() if ch.isalnum())[:64]


def shown_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def create_code(
    session: Session,
    project: models.Project,
    *,
    max_uses: int,
    valid_hours: float,
    created_by: str,
    now: datetime,
) -> models.JoinCode:
    row = models.JoinCode(
        project_id=project.id,
        code="".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)),
        max_uses=max_uses,
        uses=0,
        expires_at=now + timedelta(hours=valid_hours),
        created_by=created_by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def join(session: Session, code_text: str, user: str, now: datetime) -> tuple[models.Project, bool]:
    """Enrol ``user`` as a student with a join code; returns the course and whether the
    user was enrolled now (False: already a member, no use taken)."""
    code = normalise_code(code_text)
    row = session.scalar(select(models.JoinCode).where(models.JoinCode.code == code))
    unknown = EnrolmentRefused(
        404,
        "unknown-code",
        "No course has this join code; check it with your instructor (codes look like ABCD-EFGH).",
    )
    if row is None or len(code) != CODE_LENGTH:
        raise unknown
    project = session.get(models.Project, row.project_id)
    if project is None or project.kind != "course":
        raise unknown
    if project.valid_until < now.date():
        raise EnrolmentRefused(
            410, "course-ended", f"{project.title} has ended; its join code no longer enrols."
        )
    if row.revoked_at is not None:
        raise EnrolmentRefused(
            410, "code-revoked", "This join code was withdrawn; ask your instructor for a new one."
        )
    if _aware(row.expires_at) <= now:
        raise EnrolmentRefused(
            410, "code-expired", "This join code has expired; ask your instructor for a new one."
        )
    existing = session.scalar(
        select(models.Membership.id)
        .join(models.User)
        .where(models.User.name == user, models.Membership.project_id == project.id)
    )
    if existing is not None:
        return project, False
    # One conditional UPDATE takes a place: it holds on SQLite (the write lock) and on
    # PostgreSQL (the row lock, with the condition checked again after the wait).
    taken = session.execute(
        update(models.JoinCode)
        .where(
            models.JoinCode.id == row.id,
            models.JoinCode.uses < models.JoinCode.max_uses,
            models.JoinCode.revoked_at.is_(None),
            models.JoinCode.expires_at > now,
        )
        .values(uses=models.JoinCode.uses + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise EnrolmentRefused(
            409,
            "code-used-up",
            f"All {row.max_uses} places of this join code are taken; ask your instructor.",
        )
    enrol(session, project, user, "student", "request")
    session.flush()
    return project, True


def import_roster(session: Session, project: models.Project, rows: list[RosterRow]) -> dict:
    """Enrol every row (roles updated for those already in); counts of what changed."""
    before = {
        name: role
        for name, role in session.execute(
            select(models.User.name, models.Membership.course_role)
            .join(models.Membership.user)
            .where(models.Membership.project_id == project.id)
        )
    }
    added = changed = 0
    for row in rows:
        if row.user not in before:
            added += 1
        elif before[row.user] != row.role:
            changed += 1
        enrol(session, project, row.user, row.role, "request")
    session.flush()
    return {"added": added, "changed": changed, "unchanged": len(rows) - added - changed}


def remove(session: Session, project: models.Project, user: str) -> None:
    """End ``user``'s membership of the course (their files stay where they are)."""
    membership = session.scalar(
        select(models.Membership)
        .join(models.User)
        .where(models.User.name == user, models.Membership.project_id == project.id)
    )
    if membership is None:
        raise EnrolmentRefused(404, "not-a-member", f"{user!r} is not in {project.title}.")
    session.delete(membership)
