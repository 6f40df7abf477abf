"""Pages of access requests: the access page (users) and the requests page (operators).

- ``/access``: where a user without an active project lands after login. It says so, takes
  an access request (which project, what for) and shows the outcome of earlier ones.
- ``/requests``: operators decide pending requests and see the decisions made.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from aitestbed.portal import models, schemas
from aitestbed.portal.access_requests import logic
from aitestbed.portal.access_requests.api import create_and_notify, run
from aitestbed.portal.deps import RowId
from aitestbed.portal.directory import has_active_project
from aitestbed.portal.pages import (
    PageUser,
    form_user,
    operator_page_user,
    page_user,
    render,
)


def access_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def access_view(request: Request, user: PageUser, problem: str = "", status_code=200):
        with request.app.state.sessions() as session:
            active = has_active_project(session, user.name, date.today())
            mine = logic.listing(session, user.name, operator=False)
            requests = [(row, logic.outcome(row)) for row in mine]
            pending = any(r.status == models.AccessRequestStatus.PENDING for r in mine)
            return render(
                request,
                user,
                "access_requests/access.html",
                title="Your access" if active else "No active project",
                current="access",
                status_code=status_code,
                active=active,
                pending=pending,
                requests=requests,
                problem=problem,
            )

    @router.get("/access")
    async def access_page(request: Request):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        return access_view(request, user)

    @router.post("/access")
    async def access_submit(request: Request):
        user, form = await form_user(request)
        project = form.get("project", "").strip()
        try:
            body = schemas.AccessRequestIn(project=project or None, reason=form.get("reason", ""))
        except ValueError:
            return access_view(
                request,
                user,
                "Give the project as its short name (lower-case letters, digits, dashes) and "
                "say what for (at most 2,000 characters).",
                422,
            )
        try:
            create_and_notify(request, user.name, body)
        except HTTPException as refused:
            return access_view(request, user, str(refused.detail), refused.status_code)
        return RedirectResponse(f"{request.app.state.prefix}access", status_code=303)

    def requests_view(request, user, decided=None, problem="", status_code=200):
        with request.app.state.sessions() as session:
            pending = logic.listing(session, user.name, True, "pending")
            slugs = list(session.scalars(select(models.Project.slug).order_by(models.Project.slug)))
            recent = [(row, logic.outcome(row)) for row in logic.recently_decided(session)]
            just = next((pair for pair in recent if pair[0].id == decided), None)
            return render(
                request,
                user,
                "access_requests/requests.html",
                title="Access requests",
                current="requests",
                status_code=status_code,
                pending=pending,
                slugs=slugs,
                recent=recent,
                just=just,
                problem=problem,
            )

    @router.get("/requests")
    async def requests_page(
        request: Request,
        decided: Annotated[int | None, Query(ge=1, le=schemas.MAX_DB_INT)] = None,
    ):
        user = await operator_page_user(request)
        if not isinstance(user, PageUser):
            return user
        return requests_view(request, user, decided)

    @router.post("/requests/{request_id}/{decision}")
    async def decide(request: Request, request_id: RowId, decision: str):
        user, form = await form_user(request, operator=True)
        project, role = form.get("project", ""), form.get("role", "member")
        note = form.get("note", "")
        try:
            if decision == "approve":
                try:
                    body = schemas.AccessApproval(project=project or None, role=role, note=note)
                except ValueError:
                    raise HTTPException(
                        422,
                        "Pick a project and a role (member or manager); a note has at "
                        "most 2,000 characters.",
                    ) from None
                run(request, lambda s: logic.approve(s, request_id, user.name, body))
            elif decision == "decline":
                try:
                    declined = schemas.AccessDecline(note=note)
                except ValueError:
                    raise HTTPException(422, "A note has at most 2,000 characters.") from None
                run(request, lambda s: logic.decline(s, request_id, user.name, declined))
            else:
                raise HTTPException(404, "Unknown decision: use approve or decline.")
        except HTTPException as refused:
            return requests_view(
                request, user, problem=str(refused.detail), status_code=refused.status_code
            )
        prefix = request.app.state.prefix
        return RedirectResponse(f"{prefix}requests?decided={request_id}", status_code=303)

    return router
