"""The jobs page: the caller's batch jobs (operators: everyone's), newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request

from aitestbed.portal.pages import PageUser, page_user, render


def jobs_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/jobs")
    async def jobs_page(request: Request):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        gateway = request.app.state.jobs
        jobs = gateway.list(user.identity, everyone=user.operator)[:200] if gateway else None
        return render(request, user, "jobs/list.html", title="Jobs", current="jobs", jobs=jobs)

    return router
