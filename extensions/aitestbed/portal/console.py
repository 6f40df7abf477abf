"""The operator console's front page: what waits for a decision, and where each task is."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from sqlalchemy import func, select

from aitestbed.portal import models
from aitestbed.portal.courses.classroom import active_hub_users
from aitestbed.portal.pages import PageUser, operator_page_user, pending_requests, render
from aitestbed.portal.sessions import gpu_inventory, gpu_places
from aitestbed.portal.usage import ACTIVE_JOB_STATES


def starting_servers(users: list[dict] | None) -> list[str] | None:
    """Who is starting a server now (waiting in the hub's start queue or starting): the
    hub's users whose server is pending a spawn; None when the hub's list is unknown."""
    if users is None:
        return None
    return sorted(
        f"{user['name']}/{name}" if name else user["name"]
        for user in users
        for name, server in (user.get("servers") or {}).items()
        if server.get("pending") == "spawn"
    )


def running_by_flavor(session) -> list[tuple[str, str, int, float]]:
    """(flavor slug, its name, running sessions, GPUs they hold), busiest first."""
    count, gpus = func.count(), func.coalesce(func.sum(models.SessionRecord.gpus), 0.0)
    rows = session.execute(
        select(models.SessionRecord.flavor, count, gpus)
        .where(models.SessionRecord.stopped_at.is_(None))
        .group_by(models.SessionRecord.flavor)
        .order_by(count.desc(), models.SessionRecord.flavor)
    ).all()
    names = dict(session.execute(select(models.Flavor.slug, models.Flavor.display_name)).all())
    return [(slug, names.get(slug, slug), n, float(g)) for slug, n, g in rows]


def console_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console")
    async def console_page(request: Request):
        user = await operator_page_user(request)
        if not isinstance(user, PageUser):
            return user
        today = date.today()
        starting = starting_servers(await active_hub_users(request.app.state))
        inventory = gpu_inventory(request)
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
            in_use = running_by_flavor(session)
            places = (
                {}
                if inventory is None
                else gpu_places(session, inventory, session.scalars(select(models.Flavor)))
            )
            jobs = dict(
                session.execute(
                    select(models.Job.state, func.count())
                    .where(models.Job.state.in_(ACTIVE_JOB_STATES))
                    .group_by(models.Job.state)
                ).all()
            )
        return render(
            request,
            user,
            "console.html",
            title="Operator console",
            current="console",
            in_use=in_use,
            starting=starting,
            gpu_places=sorted(places.items()),
            jobs_pending=jobs.get("PENDING", 0),
            jobs_running=jobs.get("RUNNING", 0),
            **counts,
        )

    return router
