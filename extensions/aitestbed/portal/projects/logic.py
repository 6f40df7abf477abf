"""Create, change, extend and close projects; add, change and remove members.

A project is checked exactly as an entry of the settings file (``settings.project_problems``)
so the console, the API and the file accept the same projects. Rows the settings file owns
(``source = settings``) are shown but never changed here: the next start would undo the
change. The same holds for memberships the settings file or single sign-on own.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from aitestbed import settings as site_settings
from aitestbed.portal import models
from aitestbed.portal.seed import apply_project, get_or_create_user

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
EDITABLE_MEMBERSHIPS = (models.MembershipSource.OPERATOR, models.MembershipSource.REQUEST)


class ProjectError(Exception):
    """A change that cannot be made: ``status`` to answer, ``problems`` as (field, message)."""

    def __init__(self, status: int, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.status = status
        self.problems = problems


def document(project: models.Project) -> dict[str, Any]:
    """A project row as its settings-file entry (the form's values, a change's base)."""
    allocation: dict[str, Any] = {
        "gpu_hours": project.gpu_hours_budget,
        "max_concurrent_gpus": project.max_concurrent_gpus,
        "storage_quota_gb": project.storage_quota_gb,
        "valid_from": project.valid_from.isoformat(),
        "valid_until": project.valid_until.isoformat(),
    }
    if project.slurm_account:
        allocation["slurm_account"] = project.slurm_account
    doc: dict[str, Any] = {
        "slug": project.slug,
        "title": project.title,
        "description": project.description,
        "allocation": allocation,
    }
    if project.allowed_flavors is not None:
        doc["flavors"] = list(project.allowed_flavors)
    if project.allowed_images is not None:
        doc["images"] = list(project.allowed_images)
    return doc


def _validated(session: Session, doc: Any) -> site_settings.Project:
    flavors = set(session.scalars(select(models.Flavor.slug).where(models.Flavor.enabled)))
    images = set(session.scalars(select(models.Image.slug).where(models.Image.enabled)))
    problems = site_settings.project_problems(doc, flavor_slugs=flavors, image_slugs=images)
    if problems:
        raise ProjectError(422, problems)
    allocation = doc["allocation"]
    return site_settings.Project(
        slug=doc["slug"],
        title=doc["title"].strip(),
        description=doc.get("description", "").strip(),
        allocation=site_settings.Allocation(
            gpu_hours=float(allocation["gpu_hours"]),
            max_concurrent_gpus=int(allocation["max_concurrent_gpus"]),
            storage_quota_gb=int(allocation.get("storage_quota_gb", 0)),
            valid_from=date.fromisoformat(allocation["valid_from"]),
            valid_until=date.fromisoformat(allocation["valid_until"]),
            slurm_account=allocation.get("slurm_account"),
        ),
        flavors=tuple(doc["flavors"]) if "flavors" in doc else None,
        images=tuple(doc["images"]) if "images" in doc else None,
    )


def load(session: Session, slug: str) -> models.Project:
    project = session.scalar(
        select(models.Project)
        .where(models.Project.slug == slug)
        .options(selectinload(models.Project.memberships).selectinload(models.Membership.user))
    )
    if project is None:
        raise ProjectError(404, [("slug", f"There is no project {slug!r}.")])
    return project


def _owned_by_portal(project: models.Project) -> None:
    if project.source == "settings":
        raise ProjectError(
            409,
            [
                (
                    "slug",
                    f"The project {project.slug!r} is defined in the site settings file; "
                    "change it there.",
                )
            ],
        )


def create(session: Session, doc: Any) -> models.Project:
    """A new project owned by the portal (``source = api``)."""
    spec = _validated(session, doc)
    if session.scalar(select(models.Project.id).where(models.Project.slug == spec.slug)):
        raise ProjectError(409, [("slug", f"A project {spec.slug!r} exists already.")])
    project = models.Project(slug=spec.slug, source="api")
    apply_project(project, spec)
    try:
        with session.begin_nested():  # two operators creating the same slug at once
            session.add(project)
            session.flush()
    except IntegrityError:
        raise ProjectError(409, [("slug", f"A project {spec.slug!r} exists already.")]) from None
    return project


def change(session: Session, slug: str, changes: dict[str, Any]) -> models.Project:
    """Change the fields given (``allocation`` fields one by one); the slug stays."""
    project = load(session, slug)
    _owned_by_portal(project)
    if "slug" in changes and changes["slug"] != slug:
        raise ProjectError(422, [("slug", "cannot be changed.")])
    doc = document(project)
    for key, value in changes.items():
        if key == "allocation" and isinstance(value, dict):
            doc["allocation"] = {**doc["allocation"], **value}
        elif value is None and key in ("flavors", "images"):
            doc.pop(key, None)  # null: every flavor or image of the catalog
        else:
            doc[key] = value
    apply_project(project, _validated(session, doc))
    session.flush()
    return project


def extend(session: Session, slug: str, until: date, extra_gpu_hours: float = 0.0):
    """Move the end of the allocation later, optionally adding GPU-hours to the budget."""
    project = load(session, slug)
    if until <= project.valid_until:
        raise ProjectError(
            422,
            [("valid_until", f"Give a date after the current end, {project.valid_until}.")],
        )
    allocation: dict[str, Any] = {"valid_until": until.isoformat()}
    if extra_gpu_hours:
        allocation["gpu_hours"] = project.gpu_hours_budget + extra_gpu_hours
    return change(session, slug, {"allocation": allocation})


def close(session: Session, slug: str, today: date) -> models.Project:
    """End the allocation yesterday: no new session or job; history and members stay."""
    project = load(session, slug)
    _owned_by_portal(project)
    yesterday = today - timedelta(days=1)
    project.valid_until = min(project.valid_until, yesterday)
    project.valid_from = min(project.valid_from, project.valid_until)
    session.flush()
    return project


def _membership(project: models.Project, user: str) -> models.Membership | None:
    return next((m for m in project.memberships if m.user.name == user), None)


def _editable(membership: models.Membership) -> None:
    if membership.source not in EDITABLE_MEMBERSHIPS:
        where = {
            models.MembershipSource.SETTINGS: "the site settings file; change it there",
            models.MembershipSource.SSO: "single sign-on; change it at the identity provider",
        }[membership.source]
        raise ProjectError(409, [("user", f"This membership comes from {where}.")])


def set_member(session: Session, slug: str, user: str, role: str) -> models.Membership:
    """Add ``user`` with ``role`` or change their role (a membership this portal made)."""
    if not USERNAME.match(user):
        raise ProjectError(
            422, [("user", "Lower-case letters, digits, dot, dash and underscore only.")]
        )
    if role not in (r.value for r in models.Role):
        raise ProjectError(422, [("role", "Choose member or manager.")])
    project = load(session, slug)
    membership = _membership(project, user)
    if membership is None:
        membership = models.Membership(
            user=get_or_create_user(session, user),
            role=models.Role(role),
            source=models.MembershipSource.OPERATOR,
        )
        project.memberships.append(membership)
    else:
        _editable(membership)
        membership.role = models.Role(role)
    session.flush()
    return membership


def remove_member(session: Session, slug: str, user: str) -> None:
    project = load(session, slug)
    membership = _membership(project, user)
    if membership is None:
        raise ProjectError(404, [("user", f"{user!r} is not a member of {slug!r}.")])
    _editable(membership)
    project.memberships.remove(membership)
    session.flush()


def listing(session: Session) -> list[models.Project]:
    return list(
        session.scalars(
            select(models.Project)
            .order_by(models.Project.slug)
            .options(selectinload(models.Project.memberships))
        )
    )
