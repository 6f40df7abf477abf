"""Pages of the dataset catalog: the datasets a user may use, and for operators the catalog
with its grants and the audit log (filters, paging, CSV with the same filters)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from aitestbed.policy.datasets import use_decision
from aitestbed.portal import models
from aitestbed.portal.datasets import grants
from aitestbed.portal.datasets.access import (
    audit,
    candidate_datasets,
    mount_path,
    rule_for,
    viewer_of,
)
from aitestbed.portal.datasets.api import (
    DATASET_SLUG,
    USERNAME,
    AuditAction,
    audit_query,
)
from aitestbed.portal.db import transaction
from aitestbed.portal.pages import PageUser, form_user, operator_page_user, page_user, render
from aitestbed.portal.usage import as_utc

AUDIT_PAGE = 50


def _catalog_rows(session):
    return list(
        session.scalars(
            select(models.Dataset)
            .order_by(models.Dataset.slug)
            .options(
                selectinload(models.Dataset.grants).selectinload(models.DatasetGrant.project),
                selectinload(models.Dataset.tag_rows),
            )
        )
    )


def sessions_see(request: Request, slug: str) -> str:
    """Where this site's sessions find a dataset: ``~/datasets/<slug>`` in the embedded
    default, ``/datasets/<slug>`` in a pod (``create_app(datasets_mount=...)``)."""
    root = getattr(request.app.state, "datasets_mount", None)
    return f"{root}/{slug}" if root else mount_path(slug)


def datasets_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/datasets")
    async def datasets_page(request: Request):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        with transaction(request.app.state.sessions) as session:
            viewer = viewer_of(session, user.identity)
            rows = candidate_datasets(session, viewer.projects)
            items = [
                (row, use_decision(rule_for(row), viewer), sessions_see(request, row.slug))
                for row in rows
            ]
            audit(
                session,
                user=viewer.name,
                action="list",
                allowed=True,
                reason="ok",
                detail=f"page=datasets results={len(items)}",
            )
            return render(
                request,
                user,
                "datasets/mine.html",
                title="Datasets",
                current="datasets",
                items=items,
            )

    def catalog_page(request, user, *, problem="", notice="", status_code=200):
        with request.app.state.sessions() as session:
            rows = _catalog_rows(session)
            projects = list(
                session.scalars(select(models.Project.slug).order_by(models.Project.slug))
            )
            return render(
                request,
                user,
                "datasets/catalog.html",
                title="Dataset catalog",
                current="catalog",
                status_code=status_code,
                rows=rows,
                projects=projects,
                problem=problem,
                notice=notice,
                mount_path=lambda slug: sessions_see(request, slug),
            )

    @router.get("/catalog")
    async def catalog(request: Request, granted: str = "", revoked: str = ""):
        user = await operator_page_user(request)
        if not isinstance(user, PageUser):
            return user
        notice = ""
        if granted:
            notice = f"Granted: {granted}."
        elif revoked:
            notice = f"Revoked: {revoked}."
        return catalog_page(request, user, notice=notice)

    @router.post("/catalog/{slug}/grants")
    async def grant(request: Request, slug: str):
        user, form = await form_user(request, operator=True)
        project = form.get("project", "")
        purpose = form.get("purpose", "").strip() or None
        try:
            expires_on = date.fromisoformat(form["expires_on"]) if form.get("expires_on") else None
        except ValueError:
            problem = "Expires on: give a date as YYYY-MM-DD."
            return catalog_page(request, user, problem=problem, status_code=422)
        refusal = None
        with transaction(request.app.state.sessions) as session:
            try:
                grants.grant(
                    session, user.name, slug, project, purpose=purpose, expires_on=expires_on
                )
            except grants.GrantRefused as refused:
                refusal = refused  # committed with its audit entry
        if refusal is not None:
            return catalog_page(request, user, problem=str(refusal), status_code=refusal.status)
        what = quote(f"{slug} to {project}")
        return RedirectResponse(f"{request.app.state.prefix}catalog?granted={what}", 303)

    @router.post("/catalog/{slug}/grants/{project}/revoke")
    async def revoke(request: Request, slug: str, project: str):
        user, _form = await form_user(request, operator=True)
        try:
            with transaction(request.app.state.sessions) as session:
                grants.revoke(session, user.name, slug, project)
        except grants.GrantRefused as refused:
            return catalog_page(request, user, problem=str(refused), status_code=refused.status)
        what = quote(f"{slug} from {project}")
        return RedirectResponse(f"{request.app.state.prefix}catalog?revoked={what}", 303)

    @router.get("/audit")
    async def audit_page(
        request: Request,
        user_filter: Annotated[str, Query(alias="user", max_length=64)] = "",
        dataset: Annotated[str, Query(max_length=60)] = "",
        action: Annotated[str, Query(max_length=32)] = "",
        allowed: Annotated[str, Query(max_length=5)] = "",
        since: Annotated[str, Query(max_length=32)] = "",
        until: Annotated[str, Query(max_length=32)] = "",
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ):
        user = await operator_page_user(request)
        if not isinstance(user, PageUser):
            return user
        filters = {
            "user": user_filter,
            "dataset": dataset,
            "action": action,
            "allowed": allowed,
            "since": since,
            "until": until,
        }
        problems = _filter_problems(filters)
        entries, total = [], 0
        if not problems:
            query = await audit_query(
                user=user_filter or None,
                dataset=dataset or None,
                action=action or None,
                allowed={"yes": True, "no": False}.get(allowed),
                since=_when(since),
                until=_when(until),
            )
            with request.app.state.sessions() as session:
                total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
                entries = [
                    (e, as_utc(e.at))
                    for e in session.scalars(
                        query.limit(AUDIT_PAGE).offset((page - 1) * AUDIT_PAGE)
                    )
                ]
        kept = {k: v for k, v in filters.items() if v}
        csv_filters = {**kept}
        if "allowed" in csv_filters:
            csv_filters["allowed"] = "true" if allowed == "yes" else "false"
        pages = max((total + AUDIT_PAGE - 1) // AUDIT_PAGE, 1)
        return render(
            request,
            user,
            "datasets/audit.html",
            title="Dataset audit log",
            current="audit",
            status_code=422 if problems else 200,
            entries=entries,
            total=total,
            page=page,
            pages=pages,
            filters=filters,
            problems=problems,
            actions=AuditAction.__args__,
            link=lambda n: f"?{urlencode({**kept, 'page': n})}",
            csv_link=f"{request.app.state.prefix}api/dataset-audit.csv"
            + (f"?{urlencode(csv_filters)}" if csv_filters else ""),
        )

    return router


def _when(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _filter_problems(filters: dict[str, str]) -> list[tuple[str, str]]:
    """The audit filters the API would refuse, named by field (the page shows them)."""
    problems = []
    if filters["user"] and not re.match(USERNAME, filters["user"]):
        problems.append(("user", "Lower-case letters, digits, dot, dash and underscore only."))
    if filters["dataset"] and not re.match(DATASET_SLUG, filters["dataset"]):
        problems.append(("dataset", "A dataset's short name: lower-case letters, digits, dashes."))
    if filters["action"] and filters["action"] not in AuditAction.__args__:
        problems.append(("action", "Choose one of the listed actions."))
    if filters["allowed"] not in ("", "yes", "no"):
        problems.append(("allowed", "Choose yes, no or any."))
    for name in ("since", "until"):
        try:
            _when(filters[name])
        except ValueError:
            problems.append((name, "Give a date (YYYY-MM-DD) or a date and time."))
    return problems
