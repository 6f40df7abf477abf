"""Operator reports as streamed CSV: each project's usage, and every usage record.

Both stream (see :mod:`aitestbed.portal.export`): projects are read a batch at a time and
records through a server-side cursor, so a report of a million records costs the same memory
as one of ten.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import literal, select
from sqlalchemy.orm import Session, sessionmaker

from aitestbed.portal import models, queries, schemas
from aitestbed.portal.deps import CurrentUser, DbSession
from aitestbed.portal.export import csv_chunks, csv_response, formatted, iso_utc, streamed_rows
from aitestbed.portal.reports.api import MONTH, month_bounds
from aitestbed.portal.usage import CSV_COLUMNS, usage_by_project

# Projects whose usage is computed in one go while the usage report streams.
PROJECT_BATCH = 500
RECORD_COLUMNS = (
    "kind",
    "id",
    "project",
    "user",
    "what",
    "flavor",
    "partition",
    "image",
    "gpus",
    "started_at",
    "ended_at",
    "gpu_hours",
)


def project_usage_records(
    sessions: sessionmaker[Session], now: datetime, batch: int = PROJECT_BATCH
) -> Iterator[list[Any]]:
    """Every project's usage (the columns of ``usage.CSV_COLUMNS``), by slug."""
    with sessions() as session:
        after = ""
        while True:
            projects = session.scalars(
                select(models.Project)
                .where(models.Project.slug > after)
                .order_by(models.Project.slug)
                .limit(batch)
            ).all()
            if not projects:
                return
            usage = usage_by_project(session, [p.id for p in projects], now)
            for project in projects:
                used = usage[project.id]
                yield [
                    project.slug,
                    project.title,
                    project.gpu_hours_budget,
                    round(used.gpu_hours_used, 4),
                    project.max_concurrent_gpus,
                    used.gpus_in_use,
                    used.running_sessions,
                    project.valid_from,
                    project.valid_until,
                ]
            after = projects[-1].slug
            session.expunge_all()


def _window(query, started, since: datetime | None, until: datetime | None):
    if since is not None:
        query = query.where(started >= since)
    if until is not None:
        query = query.where(started < until)
    return query


def usage_records(
    sessions: sessionmaker[Session], since: datetime | None, until: datetime | None
) -> Iterator[Any]:
    """Every session record (by start) then every job (by submission) in [since, until),
    each by id."""
    record = models.SessionRecord
    sessions_query = (
        select(
            literal("session"),
            record.id,
            models.Project.slug,
            models.User.name,
            record.flavor,
            record.flavor,
            literal(None),
            record.image,
            record.gpus,
            record.started_at,
            record.stopped_at,
            record.gpu_hours,
        )
        .join(models.Project, models.Project.id == record.project_id)
        .join(models.User, models.User.id == record.user_id)
        .order_by(record.id)
    )
    yield from streamed_rows(sessions, _window(sessions_query, record.started_at, since, until))
    job = models.Job
    jobs_query = (
        select(
            literal("job"),
            job.id,
            models.Project.slug,
            job.owner,
            job.name,
            literal(None),
            job.partition,
            literal(None),
            job.nodes * job.gpus_per_node,
            job.started_at,
            job.ended_at,
            job.gpu_hours_charged,
        )
        .join(models.Project, models.Project.id == job.project_id)
        .order_by(job.id)
    )
    yield from streamed_rows(sessions, _window(jobs_query, job.submitted_at, since, until))


def reports_router() -> APIRouter:
    router = APIRouter(tags=["usage"])
    problems = {401: {"model": schemas.Problem}, 403: {"model": schemas.Problem}}
    csv_body = {200: {"content": {"text/csv": {}}}}

    @router.get("/usage.csv", response_class=StreamingResponse, responses={**problems, **csv_body})
    def usage_export(
        request: Request, identity: CurrentUser, session: DbSession
    ) -> StreamingResponse:
        """Every project's usage as CSV, for operators."""
        if not queries.is_operator(session, identity):
            raise HTTPException(403, "Only operators can export the usage of all projects.")
        rows = project_usage_records(request.app.state.sessions, datetime.now(UTC))
        return csv_response(csv_chunks(rows, CSV_COLUMNS), "usage.csv")

    @router.get(
        "/usage-records.csv", response_class=StreamingResponse, responses={**problems, **csv_body}
    )
    def usage_records_export(
        request: Request,
        identity: CurrentUser,
        session: DbSession,
        since: Annotated[datetime | None, Query(description="Started at or after.")] = None,
        until: Annotated[datetime | None, Query(description="Started before.")] = None,
        month: Annotated[
            str | None, Query(pattern=MONTH, description="A calendar month, YYYY-MM (UTC).")
        ] = None,
    ) -> StreamingResponse:
        """Every session and job (started or submitted in the window) as CSV, for operators: one row
        each, with its GPUs and GPU-hours (empty until it ends). Streamed, any size."""
        if not queries.is_operator(session, identity):
            raise HTTPException(403, "Only operators can export the usage records.")
        if month is not None:
            since, until = month_bounds(month)
        rows = usage_records(request.app.state.sessions, since, until)
        times = RECORD_COLUMNS.index("started_at"), RECORD_COLUMNS.index("ended_at")
        formatters = [iso_utc if i in times else None for i in range(len(RECORD_COLUMNS))]
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return csv_response(
            csv_chunks(formatted(rows, *formatters), RECORD_COLUMNS),
            f"usage-{month}.csv" if month else f"usage-records-{stamp}.csv",
        )

    return router
