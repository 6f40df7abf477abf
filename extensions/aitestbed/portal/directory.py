"""Who belongs where, as single sign-on says: applied to the portal database at each login.

The hub's OIDC authenticator computes a user's grants from the provider's answer (pure
mapping in ``aitestbed.hub.oidc``) and calls :func:`apply_sso_grants` in the same
transaction as nothing else, right after the login is allowed. Memberships it creates are
marked ``source = sso``; at the next login the ones no longer granted are removed, so a
removal at the provider ends the access. Memberships from the settings or from approved
access requests are never touched here.

:func:`has_active_project` is the question the hub asks before it starts a server.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.portal import models
from aitestbed.portal.seed import get_or_create_user

ROLE_RANK = {models.Role.MEMBER: 0, models.Role.MANAGER: 1}


def apply_sso_grants(
    session: Session,
    name: str,
    *,
    instructor: bool,
    projects: Iterable[tuple[str, str]],
) -> dict[str, list[str]]:
    """Make ``name``'s SSO-granted memberships exactly ``projects`` ((slug, role) pairs).

    Returns what changed (``added``, ``removed``, ``updated`` project slugs) for the log.
    Unknown project slugs are skipped (the settings check them at start).
    """
    user = get_or_create_user(session, name)
    user.is_instructor = instructor
    wanted = dict(projects)
    rows = {
        p.slug: p
        for p in session.scalars(
            select(models.Project).where(models.Project.slug.in_(list(wanted)))
        )
    }
    current = {m.project.slug: m for m in user.memberships}
    changes: dict[str, list[str]] = {"added": [], "removed": [], "updated": []}
    for slug, membership in current.items():
        if membership.source == models.MembershipSource.SSO and slug not in wanted:
            session.delete(membership)
            changes["removed"].append(slug)
    for slug, role_name in sorted(wanted.items()):
        project = rows.get(slug)
        if project is None:
            continue
        role = models.Role(role_name)
        membership = current.get(slug)
        if membership is None:
            session.add(
                models.Membership(
                    user=user, project=project, role=role, source=models.MembershipSource.SSO
                )
            )
            changes["added"].append(slug)
        elif membership.source == models.MembershipSource.SSO and membership.role != role:
            membership.role = role
            changes["updated"].append(slug)
    session.flush()
    return changes


def has_active_project(session: Session, name: str, today: date) -> bool:
    """Whether ``name`` belongs to at least one project whose allocation is valid today."""
    found = session.scalar(
        select(models.Membership.id)
        .join(models.User)
        .join(models.Project)
        .where(
            models.User.name == name,
            models.Project.valid_from <= today,
            models.Project.valid_until >= today,
        )
        .limit(1)
    )
    return found is not None
