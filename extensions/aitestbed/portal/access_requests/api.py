"""REST routes of access requests (``/api/access-requests``); changes need a header token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy.orm import Session

from aitestbed.portal import queries, schemas
from aitestbed.portal.access_requests import logic
from aitestbed.portal.access_requests.logic import AccessRequestError
from aitestbed.portal.auth import Identity
from aitestbed.portal.db import transaction
from aitestbed.portal.deps import CurrentUser, RowId
from aitestbed.portal.notifications import AccessRequested, Notifier
from aitestbed.portal.paging import DEFAULT_PAGE, MAX_PAGE, link_next_page


def run(request: Request, work: Callable[[Session], object]):
    """``work`` in one transaction; a refused request becomes its HTTP answer."""
    try:
        with transaction(request.app.state.sessions) as session:
            return work(session)
    except AccessRequestError as error:
        raise HTTPException(error.status, str(error)) from None


def create_and_notify(
    request: Request, name: str, body: schemas.AccessRequestIn
) -> schemas.AccessRequestOut:
    """Store a new request, then tell the operators in the background (when configured)."""
    created = run(request, lambda s: logic.to_wire(logic.create(s, name, body)))
    notifier: Notifier | None = getattr(request.app.state, "notifier", None)
    if notifier is not None:
        base = str(request.base_url).rstrip("/")
        notifier.access_requested(
            AccessRequested(
                request_id=created.id,
                user=created.user,
                project=created.project,
                reason=created.reason,
                requests_url=f"{base}{request.app.state.prefix}requests",
                site_name=request.app.state.site_name,
            )
        )
    return created


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
        return create_and_notify(request, identity.name, body)

    @router.get("", response_model=list[schemas.AccessRequestOut])
    def listing(
        identity: CurrentUser,
        request: Request,
        response: Response,
        status: Annotated[schemas.AccessRequestStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        before: Annotated[
            int | None,
            Query(
                ge=1,
                le=schemas.MAX_DB_INT,
                description="Requests with a smaller id only: the next page.",
            ),
        ] = None,
    ):
        """Your requests, newest first; operators see everyone's. Filter with
        ?status=pending; the Link header has the next page."""
        operator = _operator(request, identity)
        page = run(
            request,
            lambda s: [
                logic.to_wire(r)
                for r in logic.listing(
                    s, identity.name, operator, status, limit=limit, before=before
                )
            ],
        )
        link_next_page(request, response, page, limit, before=lambda r: r.id)
        return page

    @router.get("/{request_id}", response_model=schemas.AccessRequestOut)
    def one(request_id: RowId, identity: CurrentUser, request: Request):
        """One request: your own, or any for operators."""
        operator = _operator(request, identity)
        return run(
            request, lambda s: logic.to_wire(logic.get(s, request_id, identity.name, operator))
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
        return run(
            request, lambda s: logic.to_wire(logic.approve(s, request_id, identity.name, body))
        )

    @router.post("/{request_id}/decline", response_model=schemas.AccessRequestOut)
    def decline(
        request_id: RowId, body: schemas.AccessDecline, identity: CurrentUser, request: Request
    ):
        """Operators: close the request without access; the note is shown to the user."""
        _require_operator(request, identity)
        return run(
            request, lambda s: logic.to_wire(logic.decline(s, request_id, identity.name, body))
        )

    return router
