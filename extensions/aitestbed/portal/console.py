"""The operator console's front page: what waits for a decision, and where each task is."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from sqlalchemy import func, select

from aitestbed.portal import models
from aitestbed.portal.pages import PageUser, operator_page_user, pending_requests, render


def console_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console")
    async def console_page(request: Request):
        user = await operator_page_user(request)
        if not isinstance(user, PageUser):
            return user
        today = date.today()
        with request.app.state.sessions() as session:
            projects = list(session.scalars(select(models.Project)))
            datasets = session.scalar(
                select(func.count()).select_from(models.Dataset).where(models.Dataset.enabled)
            )
            counts = {
                "pending": pending_requests(session),
                "active": sum(1 for p in projects if p.is_active(today)),
                "projects": len(projects),
                "datasets": datasets,
                "running": session.scalar(
                    select(func.count())
                    .select_from(models.SessionRecord)
                    .where(models.SessionRecord.stopped_at.is_(None))
                ),
            }
        return render(
            request, user, "console.html", title="Operator console", current="console", **counts
        )

    return router
