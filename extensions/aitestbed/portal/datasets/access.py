"""Dataset access decisions against the database, and the audit log that records them.

The decisions themselves are pure (:mod:`aitestbed.policy.datasets`); this module loads
what they need (the caller's active projects, accepted terms, a dataset's grants) and
writes one :class:`~aitestbed.portal.models.DatasetAuditEntry` per decision. Everything
that touches a dataset (the catalog API, session mounts, the job gateway) goes through
here, so the audit log is complete.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from aitestbed.policy.datasets import (
    PUBLIC,
    DatasetDecision,
    DatasetRule,
    Viewer,
    use_decision,
)
from aitestbed.policy.safezone import grant_in_force
from aitestbed.portal import models, queries
from aitestbed.portal.auth import Identity

MOUNT_ROOT = "/datasets"


def mount_path(slug: str) -> str:
    """Where sessions and jobs see a dataset (read-only)."""
    return f"{MOUNT_ROOT}/{slug}"


def rule_for(dataset: models.Dataset, today: date | None = None) -> DatasetRule:
    """The policy's view of a dataset; grants not in force ``today`` (expired, or a
    pseudonymized dataset's grant without purpose or expiry) give no access."""
    today = today or date.today()
    return DatasetRule(
        slug=dataset.slug,
        visibility=dataset.visibility,
        granted_projects=frozenset(
            g.project.slug
            for g in dataset.grants
            if grant_in_force(dataset.data_class, g.purpose, g.expires_on, today)
        ),
        terms_version=dataset.terms_version,
        enabled=dataset.enabled,
    )


def active_projects(session: Session, user: str, today: date) -> frozenset[str]:
    """Slugs of the user's projects whose allocation is valid ``today``."""
    rows = session.scalars(
        select(models.Project)
        .join(models.Membership)
        .join(models.User)
        .where(models.User.name == user)
    )
    return frozenset(p.slug for p in rows if p.is_active(today))


def accepted_terms(
    session: Session, user: str, dataset_ids: Iterable[int] | None = None
) -> dict[str, frozenset[str]]:
    """``{dataset slug: terms versions the user accepted}``."""
    query = (
        select(models.Dataset.slug, models.TermsAcceptance.terms_version)
        .join(models.TermsAcceptance, models.TermsAcceptance.dataset_id == models.Dataset.id)
        .join(models.User, models.User.id == models.TermsAcceptance.user_id)
        .where(models.User.name == user)
    )
    if dataset_ids is not None:
        query = query.where(models.Dataset.id.in_(list(dataset_ids)))
    accepted: dict[str, set[str]] = {}
    for slug, version in session.execute(query):
        accepted.setdefault(slug, set()).add(version)
    return {slug: frozenset(versions) for slug, versions in accepted.items()}


def viewer_of(session: Session, identity: Identity) -> Viewer:
    """The viewer for an API caller (operators: the settings' operators and hub admins)."""
    operator = queries.is_operator(session, identity)
    return viewer_for(session, identity.name, date.today(), is_operator=operator)


def viewer_named(session: Session, user: str, today: date) -> Viewer:
    """The viewer for a user the hub names (operator flag from the portal's users table)."""
    operator = session.scalar(select(models.User.is_operator).where(models.User.name == user))
    return viewer_for(session, user, today, is_operator=bool(operator))


def viewer_for(session: Session, user: str, today: date, *, is_operator: bool) -> Viewer:
    return Viewer(
        name=user,
        projects=active_projects(session, user, today),
        is_operator=is_operator,
        accepted=accepted_terms(session, user),
    )


def load_dataset(session: Session, slug: str) -> models.Dataset | None:
    return session.scalar(
        select(models.Dataset)
        .where(models.Dataset.slug == slug)
        .options(selectinload(models.Dataset.grants).selectinload(models.DatasetGrant.project))
    )


def usable_in(projects: Iterable[str]):
    """SQL condition: enabled datasets that are public or granted to one of ``projects``
    (the policy's entitlement, so a query loads only what a decision can allow)."""
    granted = (
        select(models.DatasetGrant.dataset_id)
        .join(models.Project, models.Project.id == models.DatasetGrant.project_id)
        .where(models.Project.slug.in_(sorted(projects)))
    )
    return and_(
        models.Dataset.enabled,
        or_(models.Dataset.visibility == PUBLIC, models.Dataset.id.in_(granted)),
    )


def candidate_datasets(session: Session, projects: Iterable[str]) -> list[models.Dataset]:
    """The datasets a session or job in one of ``projects`` could mount, with their grants."""
    return list(
        session.scalars(
            select(models.Dataset)
            .where(usable_in(projects))
            .order_by(models.Dataset.slug)
            .options(selectinload(models.Dataset.grants).selectinload(models.DatasetGrant.project))
        )
    )


def audit(
    session: Session,
    *,
    user: str,
    action: str,
    allowed: bool,
    dataset: str | None = None,
    reason: str = "",
    project: str | None = None,
    detail: str = "",
) -> models.DatasetAuditEntry:
    """Record one access decision (in the caller's transaction)."""
    entry = models.DatasetAuditEntry(
        at=models.utcnow(),
        user=user,
        dataset=dataset,
        action=action,
        allowed=allowed,
        reason=reason,
        project=project,
        detail=detail[:2000],
    )
    session.add(entry)
    return entry


def decide_and_audit(
    session: Session,
    viewer: Viewer,
    slug: str,
    action: str,
    *,
    project: str | None = None,
    detail: str = "",
) -> tuple[models.Dataset | None, DatasetDecision]:
    """Load ``slug``, decide whether ``viewer`` may use it (in ``project``), and audit."""
    dataset = load_dataset(session, slug)
    decision = use_decision(rule_for(dataset) if dataset else None, viewer, project, slug=slug)
    audit(
        session,
        user=viewer.name,
        action=action,
        allowed=decision.allowed,
        dataset=slug,
        reason=decision.code if decision.allowed else f"{decision.code}: {decision.reason}",
        project=project,
        detail=detail,
    )
    return dataset, decision
