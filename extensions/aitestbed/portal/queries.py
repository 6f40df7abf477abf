"""Read-side decisions of the portal: who sees which project, in which shape."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from aitestbed.portal import models, schemas
from aitestbed.portal.auth import Identity
from aitestbed.portal.usage import usage_by_project


def is_operator(session: Session, identity: Identity) -> bool:
    """Hub admins and the users the settings name as operators."""
    if identity.hub_admin:
        return True
    flag = session.scalar(select(models.User.is_operator).where(models.User.name == identity.name))
    return bool(flag)


def _allocation(project: models.Project) -> schemas.Allocation:
    return schemas.Allocation(
        gpu_hours=project.gpu_hours_budget,
        max_concurrent_gpus=project.max_concurrent_gpus,
        storage_quota_gb=project.storage_quota_gb,
        valid_from=project.valid_from,
        valid_until=project.valid_until,
        slurm_account=project.slurm_account,
    )


def _summary(project: models.Project, role: str | None, today: date) -> schemas.ProjectSummary:
    return schemas.ProjectSummary(
        slug=project.slug,
        title=project.title,
        kind=project.kind,
        status=project.status(today),
        role=role,
        allocation=_allocation(project),
    )


def _memberships(session: Session, name: str) -> list[models.Membership]:
    return list(
        session.scalars(
            select(models.Membership)
            .join(models.User)
            .where(models.User.name == name)
            .options(selectinload(models.Membership.project))
        )
    )


def _projects_with_roles(
    session: Session, name: str, everyone: bool, limit: int | None = None, after: str = ""
):
    """(project, the user's role or None), by slug: the user's projects, or every project;
    ``limit`` of them with a slug after ``after`` (a page)."""
    role = (
        select(models.Membership.project_id, models.Membership.role)
        .join(models.User, models.User.id == models.Membership.user_id)
        .where(models.User.name == name)
        .subquery()
    )
    query = (
        select(models.Project, role.c.role)
        .where(models.Project.slug > after)
        .order_by(models.Project.slug)
        .limit(limit)
    )
    if everyone:
        query = query.outerjoin(role, role.c.project_id == models.Project.id)
    else:
        query = query.join(role, role.c.project_id == models.Project.id)
    return session.execute(query).all()


def visible_projects(
    session: Session,
    identity: Identity,
    today: date,
    limit: int | None = None,
    after: str = "",
) -> list[schemas.ProjectSummary]:
    """The caller's projects with their role; operators see every project (one query for
    the flag, one for the projects). A page: ``limit`` projects after the slug ``after``."""
    operator = is_operator(session, identity)
    rows = _projects_with_roles(session, identity.name, operator, limit, after)
    return [_summary(p, role.value if role else None, today) for p, role in rows]


def me(session: Session, identity: Identity, today: date) -> schemas.Me:
    """The caller's flags and projects in two queries (the cheapest authenticated call:
    every page and the notebook side ask for it)."""
    flags = session.execute(
        select(models.User.is_operator, models.User.is_instructor).where(
            models.User.name == identity.name
        )
    ).first()
    operator, instructor = flags if flags else (False, False)
    memberships = _projects_with_roles(session, identity.name, everyone=False)
    return schemas.Me(
        name=identity.name,
        operator=identity.hub_admin or bool(operator),
        instructor=bool(instructor),
        projects=[_summary(project, role.value, today) for project, role in memberships],
    )


def project_detail(
    session: Session, identity: Identity, slug: str, today: date
) -> schemas.ProjectDetail | None:
    """The project, or None when it does not exist or the caller may not see it.

    Both cases look the same to the caller, so project names of other tenants do not leak.
    """
    project = session.scalar(
        select(models.Project)
        .where(models.Project.slug == slug)
        .options(selectinload(models.Project.memberships).selectinload(models.Membership.user))
    )
    if project is None:
        return None
    role = next((m.role.value for m in project.memberships if m.user.name == identity.name), None)
    if role is None and not is_operator(session, identity):
        return None
    summary = _summary(project, role, today)
    return schemas.ProjectDetail(
        **summary.model_dump(),
        description=project.description,
        allowed_flavors=project.allowed_flavors,
        allowed_images=project.allowed_images,
        members=[
            schemas.ProjectMember(user=m.user.name, role=m.role.value)
            for m in sorted(project.memberships, key=lambda m: m.user.name)
        ],
    )


def flavors(session: Session) -> list[schemas.FlavorOut]:
    rows = session.scalars(
        select(models.Flavor).where(models.Flavor.enabled).order_by(models.Flavor.id)
    )
    return [schemas.FlavorOut.model_validate(row, from_attributes=True) for row in rows]


def images(session: Session) -> list[schemas.ImageOut]:
    rows = session.scalars(
        select(models.Image).where(models.Image.enabled).order_by(models.Image.id)
    )
    return [schemas.ImageOut.model_validate(row, from_attributes=True) for row in rows]


def project_usage(
    session: Session, identity: Identity, now: datetime
) -> list[schemas.ProjectUsageOut]:
    """Usage of the caller's projects; operators get every project."""
    if is_operator(session, identity):
        projects = list(session.scalars(select(models.Project).order_by(models.Project.slug)))
    else:
        projects = sorted(
            (m.project for m in _memberships(session, identity.name)), key=lambda p: p.slug
        )
    usage = usage_by_project(session, [p.id for p in projects], now)
    return [
        schemas.ProjectUsageOut(
            slug=p.slug,
            title=p.title,
            gpu_hours_budget=p.gpu_hours_budget,
            gpu_hours_used=round(usage[p.id].gpu_hours_used, 4),
            max_concurrent_gpus=p.max_concurrent_gpus,
            gpus_in_use=usage[p.id].gpus_in_use,
            running_sessions=usage[p.id].running_sessions,
            valid_from=p.valid_from,
            valid_until=p.valid_until,
        )
        for p in projects
    ]


def pending_requests(session: Session) -> int:
    """Access requests waiting for an operator (the operators' top bar shows the count)."""
    return session.scalar(
        select(func.count())
        .select_from(models.AccessRequest)
        .where(models.AccessRequest.status == models.AccessRequestStatus.PENDING)
    )
