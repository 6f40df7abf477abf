"""The airlock's REST API: ask for an export, review it (data stewards), download once."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from aitestbed.policy.airlock import MAX_FILES, MAX_PATH
from aitestbed.portal import models, schemas
from aitestbed.portal.airlock import logic
from aitestbed.portal.deps import CurrentUser, DbSession, RowId
from aitestbed.portal.schemas import UtcDateTime

PROJECT_SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class ExportIn(BaseModel):
    project: str = Field(pattern=PROJECT_SLUG, max_length=63)
    files: list[Annotated[str, Field(max_length=MAX_PATH)]] = Field(
        min_length=1, max_length=MAX_FILES, description="Paths inside the project's outbox."
    )
    reason: str = Field(min_length=1, max_length=2000, description="Why these results leave.")


class FindingOut(BaseModel):
    check: str
    message: str


class ExportFileOut(BaseModel):
    id: int
    path: str
    size: int
    sha256: str
    findings: list[FindingOut]
    state: str = Field(description="pending, approved or declined.")
    decided_by: str | None
    decided_at: UtcDateTime | None
    note: str
    downloaded: bool


class ExportOut(BaseModel):
    id: int
    project: str
    requester: str
    reason: str
    created_at: UtcDateTime
    files: list[ExportFileOut]


class DecisionIn(BaseModel):
    decision: Literal["approve", "decline"]
    note: str = Field("", max_length=2000)


def export_out(row: models.ExportRequest) -> ExportOut:
    return ExportOut(
        id=row.id,
        project=row.project.slug,
        requester=row.requester,
        reason=row.reason,
        created_at=row.created_at,
        files=[
            ExportFileOut(
                id=f.id,
                path=f.path,
                size=f.size,
                sha256=f.sha256,
                findings=[FindingOut(**x) for x in f.findings or []],
                state=f.state,
                decided_by=f.decided_by,
                decided_at=f.decided_at,
                note=f.note,
                downloaded=f.downloaded_at is not None,
            )
            for f in row.files
        ],
    )


def settings_of(request: Request) -> logic.AirlockSettings:
    settings = request.app.state.airlock
    if settings is None:
        raise HTTPException(503, "The airlock is not set up on this portal.")
    return settings


def refusal(session: Session, refused: logic.AirlockRefused) -> HTTPException:
    """Commit the refusal's audit entry, then answer it."""
    session.commit()
    detail = {"code": refused.code, "message": str(refused)}
    if refused.field:
        detail["field"] = refused.field
    return HTTPException(refused.status, detail)


def visible_requests(session: Session, user: str, steward: bool) -> list[models.ExportRequest]:
    query = (
        select(models.ExportRequest)
        .order_by(models.ExportRequest.id.desc())
        .options(
            selectinload(models.ExportRequest.files), selectinload(models.ExportRequest.project)
        )
        .limit(200)
    )
    if not steward:
        query = query.where(models.ExportRequest.requester == user)
    return list(session.scalars(query))


def airlock_api_router() -> APIRouter:
    router = APIRouter(prefix="/api/airlock", tags=["airlock"], responses=schemas.ERRORS)

    @router.post("/requests", response_model=ExportOut, status_code=201)
    def ask(body: ExportIn, request: Request, identity: CurrentUser, session: DbSession):
        """Ask to export files of a project's outbox; a data steward reviews each one."""
        settings = settings_of(request)
        try:
            row = logic.create_request(
                session,
                settings,
                identity.name,
                body.project,
                body.files,
                body.reason,
                date.today(),
            )
        except logic.AirlockRefused as refused:
            raise refusal(session, refused) from None
        session.commit()
        return export_out(logic.load_request(session, row.id))

    @router.get("/requests", response_model=list[ExportOut])
    def listing(request: Request, identity: CurrentUser, session: DbSession):
        """Your requests; a data steward sees everyone's."""
        steward = logic.is_steward(session, identity, settings_of(request))
        return [export_out(r) for r in visible_requests(session, identity.name, steward)]

    @router.get("/requests/{request_id}", response_model=ExportOut)
    def one(request_id: RowId, request: Request, identity: CurrentUser, session: DbSession):
        row = logic.load_request(session, request_id)
        steward = logic.is_steward(session, identity, settings_of(request))
        if row is None or not (steward or row.requester == identity.name):
            raise HTTPException(404, f"There is no export request {request_id} of yours.")
        return export_out(row)

    @router.post("/requests/{request_id}/files/{file_id}/decision", response_model=ExportOut)
    def decide(
        request_id: RowId,
        file_id: RowId,
        body: DecisionIn,
        request: Request,
        identity: CurrentUser,
        session: DbSession,
    ):
        """Approve or decline one file (data stewards; not their own request; final)."""
        try:
            logic.decide(
                session,
                settings_of(request),
                identity,
                request_id,
                file_id,
                body.decision == "approve",
                body.note,
            )
        except logic.AirlockRefused as refused:
            raise refusal(session, refused) from None
        session.commit()
        return export_out(logic.load_request(session, request_id))

    @router.get("/requests/{request_id}/files/{file_id}/download")
    def download(
        request_id: RowId,
        file_id: RowId,
        request: Request,
        identity: CurrentUser,
        session: DbSession,
    ) -> Response:
        """The approved file, for the requester, once."""
        try:
            row, data = logic.claim_download(
                session, settings_of(request), identity.name, request_id, file_id
            )
        except logic.AirlockRefused as refused:
            raise refusal(session, refused) from None
        session.commit()
        return download_response(row.path, data)

    return router


def download_response(path: str, data: bytes) -> Response:
    name = quote(path.rsplit("/", 1)[-1], safe="")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "X-Content-Type-Options": "nosniff",
        },
    )
