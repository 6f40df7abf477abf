"""REST routes that change projects (operators); reading them stays in ``api/projects``.

Bodies are the settings file's project entry (docs/settings.md), so a script can onboard
projects from the same documents an operator would write into the file.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Response
from pydantic import BaseModel, Field

from aitestbed.portal import queries, schemas
from aitestbed.portal.deps import CurrentUser, DbSession
from aitestbed.portal.errors import FieldsProblem
from aitestbed.portal.projects import logic

SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
SlugPath = Annotated[str, Path(pattern=SLUG, max_length=63)]
UserPath = Annotated[str, Path(pattern=logic.USERNAME.pattern, max_length=64)]


class Extension(BaseModel):
    valid_until: date = Field(description="The new end of the allocation (later than now).")
    extra_gpu_hours: float = Field(0.0, ge=0, le=10_000_000, description="Added to the budget.")


class MemberIn(BaseModel):
    role: Literal["member", "manager"] = "member"


def _failed(error: logic.ProjectError) -> FieldsProblem:
    return FieldsProblem(error.status, error.problems)


def projects_api_router() -> APIRouter:
    router = APIRouter(prefix="/api/projects", tags=["projects"], responses=schemas.ERRORS)

    def detail(session, identity, slug: str) -> schemas.ProjectDetail:
        session.commit()
        found = queries.project_detail(session, identity, slug, date.today())
        assert found is not None  # an operator sees every project
        return found

    def guarded(session, identity, work):
        if not queries.is_operator(session, identity):
            raise HTTPException(403, "Only operators can change projects.")
        try:
            return work()
        except logic.ProjectError as error:
            session.rollback()
            raise _failed(error) from None

    @router.post("", response_model=schemas.ProjectDetail, status_code=201)
    def create(
        identity: CurrentUser,
        session: DbSession,
        doc: Annotated[dict[str, Any], Body(description="A project as in the settings file.")],
    ) -> schemas.ProjectDetail:
        """Create a project with its allocation (operators); the portal owns it."""
        doc = {k: v for k, v in doc.items() if k != "members"}
        project = guarded(session, identity, lambda: logic.create(session, doc))
        return detail(session, identity, project.slug)

    @router.patch("/{slug}", response_model=schemas.ProjectDetail)
    def change(
        slug: SlugPath,
        identity: CurrentUser,
        session: DbSession,
        changes: Annotated[dict[str, Any], Body(description="Fields to change.")],
    ) -> schemas.ProjectDetail:
        """Change a project the portal owns (settings-file projects: 409)."""
        guarded(session, identity, lambda: logic.change(session, slug, changes))
        return detail(session, identity, slug)

    @router.post("/{slug}/extend", response_model=schemas.ProjectDetail)
    def extend(
        slug: SlugPath, body: Extension, identity: CurrentUser, session: DbSession
    ) -> schemas.ProjectDetail:
        """Move the end of the allocation later, optionally adding GPU-hours."""
        guarded(
            session,
            identity,
            lambda: logic.extend(session, slug, body.valid_until, body.extra_gpu_hours),
        )
        return detail(session, identity, slug)

    @router.post("/{slug}/close", response_model=schemas.ProjectDetail)
    def close(slug: SlugPath, identity: CurrentUser, session: DbSession) -> schemas.ProjectDetail:
        """End the allocation yesterday: nothing new starts; history and members stay."""
        guarded(session, identity, lambda: logic.close(session, slug, date.today()))
        return detail(session, identity, slug)

    @router.put("/{slug}/members/{user}", response_model=schemas.ProjectDetail)
    def set_member(
        slug: SlugPath, user: UserPath, body: MemberIn, identity: CurrentUser, session: DbSession
    ) -> schemas.ProjectDetail:
        """Add a member or change their role (memberships from the settings file or single
        sign-on: 409)."""
        guarded(session, identity, lambda: logic.set_member(session, slug, user, body.role))
        return detail(session, identity, slug)

    @router.delete("/{slug}/members/{user}", status_code=204)
    def remove_member(
        slug: SlugPath, user: UserPath, identity: CurrentUser, session: DbSession
    ) -> Response:
        """Remove a member the portal added."""
        guarded(session, identity, lambda: logic.remove_member(session, slug, user))
        session.commit()
        return Response(status_code=204)

    return router
