"""The hub's questions about who belongs where, answered over the portal's internal API.

The hub never opens the portal database: it asks here, with the portal service's own API
token (the same hub-only check as admission), and the rules stay in
:mod:`aitestbed.portal.directory`.

- ``GET  api/internal/users/{user}/standing``: does the user belong to a project whose
  allocation is valid today? The hub asks before every start (and to pick the landing page).
- ``GET  api/internal/users/{user}/notices``: what the hub's pages tell the user (active
  project, revocation warnings of running sessions, pending access requests).
- ``PUT  api/internal/users/{user}/sso-grants``: what single sign-on granted at this login
  (instructor flag, project memberships with roles) becomes the user's SSO memberships;
  what the provider no longer grants is removed. Idempotent: the same grants twice change
  nothing the second time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from aitestbed.portal import models, schemas
from aitestbed.portal.db import transaction
from aitestbed.portal.deps import DbSession
from aitestbed.portal.directory import apply_sso_grants, has_active_project
from aitestbed.portal.queries import pending_requests
from aitestbed.portal.revocation import notices_for
from aitestbed.portal.sessions import require_hub

SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# Any name the hub accepted at login (the provider's claim, normalised by the hub).
UserName = Annotated[str, Path(min_length=1, max_length=255)]


class Standing(BaseModel):
    user: str
    active_project: bool = Field(
        description="Member of at least one project whose allocation is valid today."
    )


class RevocationOut(BaseModel):
    project: str
    server_name: str
    reason: str
    stop_at: datetime
    stopped_at: datetime | None


class Notices(BaseModel):
    user: str
    active_project: bool
    revocations: list[RevocationOut] = Field(
        description="The user's sessions that lost their project in the last day."
    )
    pending_requests: int = Field(description="Access requests waiting for an operator.")


class ProjectGrant(BaseModel):
    project: str = Field(pattern=SLUG, max_length=63)
    role: Literal["member", "manager"]


class SsoGrants(BaseModel):
    instructor: bool
    projects: list[ProjectGrant] = Field(
        max_length=1000, description="Every project single sign-on grants, with the role."
    )


class SsoChanges(BaseModel):
    user: str
    added: list[str]
    removed: list[str]
    updated: list[str]
    course_groups: list[str] = Field(
        default_factory=list,
        description="The hub groups of the user's courses (course.<slug>, and staff.<slug> "
        "for instructors and assistants): with single sign-on the authenticator manages the "
        "user's hub groups, so it adds these to the provider's.",
    )


def course_groups_of(session, user: str) -> list[str]:
    """The hub groups of ``user``'s courses (see ``aitestbed.hub.course_rbac``)."""
    rows = session.execute(
        select(models.Project.slug, models.Membership.course_role)
        .join(models.Membership, models.Membership.project_id == models.Project.id)
        .join(models.User, models.User.id == models.Membership.user_id)
        .where(
            models.User.name == user,
            models.Project.kind == "course",
            models.Membership.course_role.is_not(None),
        )
    ).all()
    return sorted(
        {f"course.{slug}" for slug, _ in rows}
        | {f"staff.{slug}" for slug, role in rows if role in ("instructor", "assistant")}
    )


def directory_router() -> APIRouter:
    router = APIRouter(
        prefix="/api/internal",
        tags=["hub"],
        dependencies=[Depends(require_hub)],
        responses=schemas.ERRORS,
    )

    @router.get("/users/{user}/standing", response_model=Standing)
    def standing(user: UserName, session: DbSession) -> Standing:
        """Whether ``user`` belongs to a project with a valid allocation today."""
        return Standing(user=user, active_project=has_active_project(session, user, date.today()))

    @router.get("/users/{user}/notices", response_model=Notices)
    def notices(user: UserName, session: DbSession) -> Notices:
        """What the hub's pages tell ``user`` (see ``aitestbed.hub.notices``)."""
        now = datetime.now(UTC)
        return Notices(
            user=user,
            active_project=has_active_project(session, user, now.date()),
            revocations=[
                RevocationOut.model_validate(row, from_attributes=True)
                for row in notices_for(session, user, now)
            ],
            pending_requests=pending_requests(session),
        )

    @router.put("/users/{user}/sso-grants", response_model=SsoChanges)
    def sso_grants(user: UserName, body: SsoGrants, request: Request) -> SsoChanges:
        """Make the user's SSO memberships exactly ``projects`` (unknown projects skipped)."""
        with transaction(request.app.state.sessions) as session:
            changes = apply_sso_grants(
                session,
                user,
                instructor=body.instructor,
                projects=[(grant.project, grant.role) for grant in body.projects],
            )
            groups = course_groups_of(session, user)
        return SsoChanges(user=user, **changes, course_groups=groups)

    return router
