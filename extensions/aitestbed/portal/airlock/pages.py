"""The airlock page: ask for an export, see your requests and download approved files
once; data stewards review every request's files with the automatic checks' findings."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from aitestbed.policy.airlock import MAX_FILES
from aitestbed.portal.airlock import logic
from aitestbed.portal.airlock.api import download_response, settings_of, visible_requests
from aitestbed.portal.datasets.access import active_projects
from aitestbed.portal.db import transaction
from aitestbed.portal.pages import PageUser, form_user, page_user, render


def airlock_page(request: Request, user: PageUser, *, notice="", problem="", status_code=200):
    settings = settings_of(request)
    with request.app.state.sessions() as session:
        steward = logic.is_steward(session, user.identity, settings)
        rows = visible_requests(session, user.name, steward)
        projects = sorted(active_projects(session, user.name, date.today()))
        return render(
            request,
            user,
            "airlock/list.html",
            title="Airlock",
            current="airlock",
            status_code=status_code,
            notice=notice,
            problem=problem,
            steward=steward,
            rows=rows,
            projects=projects,
            max_files=MAX_FILES,
        )


def airlock_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/airlock")
    async def page(request: Request, done: str = ""):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        return airlock_page(request, user, notice=done[:200])

    @router.post("/airlock/requests")
    async def ask(request: Request):
        user, form = await form_user(request)
        paths = [line.strip() for line in form.get("files", "").splitlines() if line.strip()]
        reason = form.get("reason", "").strip()
        if not paths or not reason or len(paths) > MAX_FILES or len(reason) > 2000:
            problem = (
                f"Name 1 to {MAX_FILES} files of the outbox, one a line, and give a reason "
                "(at most 2,000 characters)."
            )
            return airlock_page(request, user, problem=problem, status_code=422)
        refusal = None
        with transaction(request.app.state.sessions) as session:
            try:
                row = logic.create_request(
                    session,
                    settings_of(request),
                    user.name,
                    form.get("project", ""),
                    paths,
                    reason,
                    date.today(),
                )
                done = f"Export request {row.id} is waiting for a data steward."
            except logic.AirlockRefused as refused:
                refusal = refused  # committed with its audit entry
        if refusal is not None:
            return airlock_page(request, user, problem=str(refusal), status_code=refusal.status)
        return RedirectResponse(f"{request.app.state.prefix}airlock?done={quote(done)}", 303)

    @router.post("/airlock/requests/{request_id}/files/{file_id}/decision")
    async def decide(request: Request, request_id: int, file_id: int):
        user, form = await form_user(request)
        refusal = None
        with transaction(request.app.state.sessions) as session:
            try:
                row = logic.decide(
                    session,
                    settings_of(request),
                    user.identity,
                    request_id,
                    file_id,
                    form.get("decision") == "approve",
                    form.get("note", "")[:2000],
                )
                done = f"{row.path}: {row.state}."
            except logic.AirlockRefused as refused:
                refusal = refused
        if refusal is not None:
            return airlock_page(request, user, problem=str(refusal), status_code=refusal.status)
        return RedirectResponse(f"{request.app.state.prefix}airlock?done={quote(done)}", 303)

    @router.get("/airlock/requests/{request_id}/files/{file_id}/download")
    async def download(request: Request, request_id: int, file_id: int):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        refusal = None
        with transaction(request.app.state.sessions) as session:
            try:
                row, data = logic.claim_download(
                    session, settings_of(request), user.name, request_id, file_id
                )
            except logic.AirlockRefused as refused:
                refusal = refused
        if refusal is not None:
            return airlock_page(request, user, problem=str(refusal), status_code=refusal.status)
        return download_response(row.path, data)

    return router
