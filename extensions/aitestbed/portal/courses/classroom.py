"""The class as its staff see it: each student's server (from the hub, with the portal's
own ``list:users`` and ``read:servers``), last activity and GPU-hours used in the course,
and the same as a CSV file.

The portal only reads the hub here. Starting and stopping students' servers happens in the
instructor's browser with the instructor's own hub rights (``static/course_servers.js``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aitestbed.portal import models
from aitestbed.portal.courses.admission import student_gpu_hours
from aitestbed.portal.export import csv_text
from aitestbed.portal.usage import as_utc

log = logging.getLogger("aitestbed.portal.courses")
CSV_COLUMNS = ("user", "role", "server", "last_activity", "gpu_hours")


def server_state(user_model: dict[str, Any] | None) -> tuple[str, datetime | None]:
    """(running | starting | stopping | stopped, last activity) of a user's default server
    from the hub's user model (pure). A user the hub did not list as active is stopped."""
    server = ((user_model or {}).get("servers") or {}).get("")
    if not server:
        return "stopped", None
    seen = server.get("last_activity")
    when = datetime.fromisoformat(seen.replace("Z", "+00:00")) if seen else None
    pending = server.get("pending")
    if pending == "stop":
        return "stopping", when
    if pending or not server.get("ready"):
        return "starting", when
    return "running", when


@dataclass(frozen=True)
class Student:
    user: str
    role: str
    server: str
    last_activity: datetime | None
    gpu_hours: float
    open_path: str


def class_rows(
    session: Session,
    project: models.Project,
    active_users: list[dict[str, Any]] | None,
    now: datetime,
    hub_base: str,
) -> list[Student]:
    """Every member of the course, by name. ``active_users`` is the hub's list of users with
    a server (None: the hub could not be read, every state is "unknown"). Last activity is
    the hub's for a server that runs, else the end of the member's last session here."""
    by_name = {u.get("name"): u for u in active_users or []}
    members = session.execute(
        select(models.User.id, models.User.name, models.Membership.course_role)
        .join(models.Membership.user)
        .where(models.Membership.project_id == project.id)
        .where(models.Membership.course_role.is_not(None))
        .order_by(models.User.name)
    ).all()
    last_stops = dict(
        session.execute(
            select(models.SessionRecord.user_id, func.max(models.SessionRecord.stopped_at))
            .where(models.SessionRecord.user_id.in_([m.id for m in members]))
            .group_by(models.SessionRecord.user_id)
        ).all()
    )
    rows = []
    for user_id, name, role in members:
        state, seen = server_state(by_name.get(name))
        if active_users is None:
            state = "unknown"
        if seen is None and last_stops.get(user_id) is not None:
            seen = as_utc(last_stops[user_id])
        rows.append(
            Student(
                user=name,
                role=role,
                server=state,
                last_activity=seen,
                gpu_hours=round(student_gpu_hours(session, user_id, project.id, now), 3),
                open_path=f"{hub_base}user/{quote(name, safe='')}/",
            )
        )
    return rows


def class_csv(rows: list[Student]) -> str:
    return csv_text(
        (
            {
                "user": r.user,
                "role": r.role,
                "server": r.server,
                "last_activity": r.last_activity.isoformat() if r.last_activity else "",
                "gpu_hours": f"{r.gpu_hours:.3f}",
            }
            for r in rows
        ),
        CSV_COLUMNS,
    )


async def active_hub_users(app_state) -> list[dict[str, Any]] | None:
    """The hub's users with a server, or None when the portal has no hub to ask or the hub
    does not answer (the page then says the states are unknown)."""
    reader = getattr(app_state, "hub_users", None)
    if reader is None:
        return None
    try:
        return await reader()
    except Exception as error:  # the hub restarting: show the roster without states
        log.warning("Could not read the servers from the hub: %s", error)
        return None
