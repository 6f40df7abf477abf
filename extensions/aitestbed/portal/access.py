"""Routes of access requests: the REST API and two small pages.

- ``/access``: where a user without an active project lands after login. It says so, takes
  an access request (which project, what for) and shows the outcome of earlier ones.
- ``/requests``: operators see pending requests and approve or decline them.

The API changes things only with a token in the ``Authorization`` header. The pages post
forms with the login cookie, so each form carries a token derived from that cookie (an
HMAC a cross-site page cannot know) and the cookie itself is SameSite=Lax.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Callable
from datetime import date
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from aitestbed.portal import access_requests, models, queries, schemas
from aitestbed.portal.access_requests import AccessRequestError
from aitestbed.portal.auth import STATE_COOKIE, TOKEN_COOKIE, HubIdentity, Identity
from aitestbed.portal.db import transaction
from aitestbed.portal.deps import CurrentUser, RowId
from aitestbed.portal.directory import has_active_project


def _run(request: Request, work: Callable[[Session], object]):
    try:
        with transaction(request.app.state.sessions) as session:
            return work(session)
    except AccessRequestError as error:
        raise HTTPException(error.status, str(error)) from None


def _operator(request: Request, identity: Identity) -> bool:
    with request.app.state.sessions() as session:
        return queries.is_operator(session, identity)


def access_api_router() -> APIRouter:
    router = APIRouter(
        prefix="/api/access-requests", tags=["access requests"], responses=schemas.ERRORS
    )

    @router.post("", status_code=201, response_model=schemas.AccessRequestOut)
    def create(body: schemas.AccessRequestIn, identity: CurrentUser, request: Request):
        """Ask for access to a project (or to get one). One pending request per user."""
        return _run(
            request,
            lambda s: access_requests.to_wire(access_requests.create(s, identity.name, body)),
        )

    @router.get("", response_model=list[schemas.AccessRequestOut])
    def listing(
        identity: CurrentUser,
        request: Request,
        status: Annotated[schemas.AccessRequestStatus | None, Query()] = None,
    ):
        """Your requests; operators see everyone's. Filter with ?status=pending."""
        operator = _operator(request, identity)
        return _run(
            request,
            lambda s: [
                access_requests.to_wire(r)
                for r in access_requests.listing(s, identity.name, operator, status)
            ],
        )

    @router.get("/{request_id}", response_model=schemas.AccessRequestOut)
    def one(request_id: RowId, identity: CurrentUser, request: Request):
        """One request: your own, or any for operators."""
        operator = _operator(request, identity)
        return _run(
            request,
            lambda s: access_requests.to_wire(
                access_requests.get(s, request_id, identity.name, operator)
            ),
        )

    def _require_operator(request: Request, identity: Identity) -> None:
        if not _operator(request, identity):
            raise HTTPException(403, "Only operators decide access requests.")

    @router.post("/{request_id}/approve", response_model=schemas.AccessRequestOut)
    def approve(
        request_id: RowId, body: schemas.AccessApproval, identity: CurrentUser, request: Request
    ):
        """Operators: grant the membership the request asks for (or the project given)."""
        _require_operator(request, identity)
        return _run(
            request,
            lambda s: access_requests.to_wire(
                access_requests.approve(s, request_id, identity.name, body)
            ),
        )

    @router.post("/{request_id}/decline", response_model=schemas.AccessRequestOut)
    def decline(
        request_id: RowId, body: schemas.AccessDecline, identity: CurrentUser, request: Request
    ):
        """Operators: close the request without access; the note is shown to the user."""
        _require_operator(request, identity)
        return _run(
            request,
            lambda s: access_requests.to_wire(
                access_requests.decline(s, request_id, identity.name, body)
            ),
        )

    return router


# --- pages --------------------------------------------------------------------------------


def form_token(cookie_token: str) -> str:
    """The anti-forgery token of the page forms, derived from the login cookie."""
    return hmac.new(cookie_token.encode(), b"aitestbed-portal-form", hashlib.sha256).hexdigest()


async def page_identity(request: Request) -> tuple[Identity | None, str | None]:
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None, None
    resolver: HubIdentity = request.app.state.identity
    return await resolver.resolve(token), token


def login_redirect(request: Request, next_url: str) -> RedirectResponse:
    resolver: HubIdentity = request.app.state.identity
    prefix = request.app.state.prefix
    url, state = resolver.authorize_redirect(next_url)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(STATE_COOKIE, state, httponly=True, samesite="lax", path=prefix)
    return response


MAX_FORM_BYTES = 16_384


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the pages post nothing else); the last value of a key wins."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise HTTPException(415, "Send the form as application/x-www-form-urlencoded.")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise HTTPException(413, "The form is too large.")
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _check_form(token: str | None, submitted: str) -> None:
    if not token or not hmac.compare_digest(form_token(token), submitted):
        raise HTTPException(403, "This form has expired or did not come from the portal; reload.")


def _page(site_name: str, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} - {html.escape(site_name)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _outcome(row: models.AccessRequest) -> str:
    e = html.escape
    what = e(row.project_slug or "any project")
    if row.status == models.AccessRequestStatus.APPROVED:
        granted = row.granted_project.slug if row.granted_project else "?"
        text = f"approved: you are now {e(row.granted_role.value)} of {e(granted)}"
    elif row.status == models.AccessRequestStatus.DECLINED:
        text = "declined"
    else:
        text = "pending: an operator will decide"
    note = f" (note: {e(row.decision_note)})" if row.decision_note else ""
    return (
        f"<li class='access-request' data-status='{e(row.status.value)}'>#{row.id} for {what}: "
        f"<b>{text}</b>{note}. You wrote: {e(row.reason)}</li>"
    )


def access_pages_router(site_name: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/access", response_class=HTMLResponse)
    async def access_page(request: Request):
        prefix = request.app.state.prefix
        identity, token = await page_identity(request)
        if identity is None:
            return login_redirect(request, f"{prefix}access")
        with request.app.state.sessions() as session:
            active = has_active_project(session, identity.name, date.today())
            operator = queries.is_operator(session, identity)
            mine = access_requests.listing(session, identity.name, operator=False)
            e = html.escape
            parts = [f"<p>Signed in as <b>{e(identity.name)}</b>.</p>"]
            if active:
                parts.append(
                    "<p id='status'>You belong to an active project. "
                    "<a href='/hub/spawn'>Start your server</a>.</p>"
                )
            else:
                parts.append(
                    "<p id='status'>You belong to <b>no active project</b> yet, so you cannot "
                    "start a server. Ask for access below; an operator will decide, and this "
                    "page shows the outcome.</p>"
                )
            if operator:
                parts.append(f"<p><a href='{e(prefix)}requests'>Pending access requests</a></p>")
            pending = any(r.status == models.AccessRequestStatus.PENDING for r in mine)
            if not pending:
                parts.append(
                    f"<form method='post' action='{e(prefix)}access' id='access-request'>"
                    f"<input type='hidden' name='form_token' value='{form_token(token or '')}'>"
                    "<p><label>Project (if you know its short name): "
                    "<input name='project' maxlength='63'></label></p>"
                    "<p><label>What for: <textarea name='reason' required maxlength='2000'>"
                    "</textarea></label></p><p><button type='submit'>Request access</button></p>"
                    "</form>"
                )
            if mine:
                parts.append(
                    "<h2>Your requests</h2><ul>" + "".join(_outcome(r) for r in mine) + "</ul>"
                )
        title = "Your access" if active else "No active project"
        return _page(site_name, title, "".join(parts))

    @router.post("/access")
    async def access_submit(request: Request):
        form = await read_form(request)
        identity, token = await page_identity(request)
        if identity is None:
            raise HTTPException(401, "Your login has expired; reload the page to log in again.")
        _check_form(token, form.get("form_token", ""))
        project = form.get("project", "").strip()
        try:
            body = schemas.AccessRequestIn(project=project or None, reason=form.get("reason", ""))
        except ValueError:
            raise HTTPException(
                422, "Give the project as its short name (lower-case letters, digits, dashes)."
            ) from None
        _run(request, lambda s: access_requests.create(s, identity.name, body))
        return RedirectResponse(f"{request.app.state.prefix}access", status_code=303)

    @router.get("/requests", response_class=HTMLResponse)
    async def requests_page(request: Request):
        prefix = request.app.state.prefix
        identity, token = await page_identity(request)
        if identity is None:
            return login_redirect(request, f"{prefix}requests")
        if not _operator(request, identity):
            raise HTTPException(403, "Only operators see access requests.")
        e = html.escape
        with request.app.state.sessions() as session:
            rows = access_requests.listing(session, identity.name, True, "pending")
            slugs = list(session.scalars(select(models.Project.slug).order_by(models.Project.slug)))
            items = []
            for row in rows:
                options = "".join(
                    f"<option{' selected' if s == row.project_slug else ''}>{e(s)}</option>"
                    for s in slugs
                )
                hidden = f"<input type='hidden' name='form_token' value='{form_token(token)}'>"
                items.append(
                    f"<li class='pending-request' id='request-{row.id}'>#{row.id} "
                    f"<b>{e(row.user.name)}</b> asks for {e(row.project_slug or 'any project')}: "
                    f"{e(row.reason)}"
                    f"<form method='post' action='{e(prefix)}requests/{row.id}/approve'>{hidden}"
                    f"<select name='project'>{options}</select><select name='role'>"
                    "<option>member</option><option>manager</option></select>"
                    "<input name='note' placeholder='note'><button>Approve</button></form>"
                    f"<form method='post' action='{e(prefix)}requests/{row.id}/decline'>{hidden}"
                    "<input name='note' placeholder='reason'><button>Decline</button></form></li>"
                )
        body = "<ul>" + "".join(items) + "</ul>" if items else "<p>No pending requests.</p>"
        return _page(site_name, "Pending access requests", body)

    @router.post("/requests/{request_id}/{decision}")
    async def decide(request: Request, request_id: RowId, decision: str):
        form = await read_form(request)
        project, role = form.get("project", ""), form.get("role", "member")
        note = form.get("note", "")
        identity, token = await page_identity(request)
        if identity is None:
            raise HTTPException(401, "Your login has expired; reload the page to log in again.")
        _check_form(token, form.get("form_token", ""))
        if not _operator(request, identity):
            raise HTTPException(403, "Only operators decide access requests.")
        if decision == "approve":
            try:
                body = schemas.AccessApproval(project=project or None, role=role, note=note)
            except ValueError:
                raise HTTPException(422, "Pick a project and a role (member or manager).") from None
            _run(request, lambda s: access_requests.approve(s, request_id, identity.name, body))
        elif decision == "decline":
            declined = schemas.AccessDecline(note=note)
            _run(
                request,
                lambda s: access_requests.decline(s, request_id, identity.name, declined),
            )
        else:
            raise HTTPException(404, "Unknown decision: use approve or decline.")
        return RedirectResponse(f"{request.app.state.prefix}requests", status_code=303)

    return router
