"""The usage page: allocation and GPU-hours of the caller's projects (operators: all), and
a plot of GPU-hours per day over the last weeks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from aitestbed.portal import models, queries
from aitestbed.portal.pages import PageUser, page_user, render
from aitestbed.portal.reports.daily import gpu_hours_per_day, project_intervals
from aitestbed.portal.reports.plot import day_chart

PLOT_DAYS = 30


def _project_ids(session, slugs: list[str]) -> dict[str, int]:
    query = select(models.Project.slug, models.Project.id).where(models.Project.slug.in_(slugs))
    return dict(session.execute(query).all())


def reports_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/usage")
    async def usage_page(
        request: Request, project: str = Query("", max_length=63, pattern=r"^[a-z0-9-]*$")
    ):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        now = datetime.now(UTC)
        with request.app.state.sessions() as session:
            usage = queries.project_usage(session, user.identity, now)
            ids = _project_ids(session, [u.slug for u in usage])
            chosen = [ids[project]] if project in ids else list(ids.values())
            first = (now - timedelta(days=PLOT_DAYS - 1)).date()
            since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
            points = gpu_hours_per_day(
                project_intervals(session, chosen, since, now), first, PLOT_DAYS
            )
        return render(
            request,
            user,
            "reports/usage.html",
            title="Usage",
            current="usage",
            usage=usage,
            project=project if project in ids else "",
            points=points,
            chart=day_chart(points),
        )

    return router
