"""Granting a dataset to a project and taking it back (operators), with the audit entry.

The REST API and the console's catalog page both call these, so both follow one rule:
public datasets need no grant, and grants the settings file owns are changed there only.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.policy.safezone import grant_problems
from aitestbed.portal import models
from aitestbed.portal.datasets.access import audit, load_dataset


class GrantRefused(Exception):
    """``status`` and ``code`` to answer, and the sentence to show."""

    def __init__(
        self, status: int, code: str, message: str, problems: list[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.problems = list(problems)


def grant(
    session: Session,
    operator: str,
    slug: str,
    project: str,
    *,
    purpose: str | None = None,
    expires_on: date | None = None,
    today: date | None = None,
) -> models.DatasetGrant:
    """Grant ``slug`` to ``project`` (idempotent: an existing grant is returned as it is,
    with a purpose and expiry given again renewing it). Pseudonymized datasets need both
    (:func:`aitestbed.policy.safezone.grant_problems`)."""
    row = load_dataset(session, slug)
    target = session.scalar(select(models.Project).where(models.Project.slug == project))
    if row is None or target is None:
        raise GrantRefused(
            404, "unknown", f"There is no dataset {slug!r} or no project {project!r}."
        )
    if row.visibility == "public":
        raise GrantRefused(409, "public", f"The dataset {slug!r} is public: every user has it.")
    existing = next((g for g in row.grants if g.project_id == target.id), None)
    if existing is not None and purpose is None and expires_on is None:
        return existing
    problems = grant_problems(row.data_class, purpose, expires_on, today or date.today())
    if problems:
        audit(
            session,
            user=operator,
            action="grant",
            allowed=False,
            dataset=slug,
            reason="; ".join(f"{f}: {m}" for f, m in problems),
            project=project,
        )
        session.flush()
        raise GrantRefused(422, "grant-incomplete", problems[0][1], problems)
    if existing is not None and existing.source == "settings":
        raise GrantRefused(
            409, "owned-by-settings", "This grant is in the site settings file; change it there."
        )
    if existing is None:
        existing = models.DatasetGrant(
            project_id=target.id, source="api", granted_by=operator, granted_at=models.utcnow()
        )
        row.grants.append(existing)
    existing.purpose = purpose
    existing.expires_on = expires_on
    audit(
        session,
        user=operator,
        action="grant",
        allowed=True,
        dataset=slug,
        reason="ok",
        project=project,
        detail=f"purpose={purpose!r} expires_on={expires_on}" if purpose or expires_on else "",
    )
    session.flush()
    return existing


def revoke(session: Session, operator: str, slug: str, project: str) -> None:
    """Take a grant back. Running sessions keep their mount until they stop; new sessions
    and jobs no longer get it."""
    row = load_dataset(session, slug)
    found = row and next((g for g in row.grants if g.project.slug == project), None)
    if found is None:
        raise GrantRefused(
            404, "not-granted", f"The dataset {slug!r} is not granted to {project!r}."
        )
    if found.source == "settings":
        raise GrantRefused(
            409, "owned-by-settings", "This grant is in the site settings file; remove it there."
        )
    row.grants.remove(found)
    audit(
        session,
        user=operator,
        action="revoke",
        allowed=True,
        dataset=slug,
        reason="ok",
        project=project,
    )
    session.flush()
