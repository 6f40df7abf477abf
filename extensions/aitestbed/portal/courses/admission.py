"""The course rules of a start, beside the project admission (a course is a project: its
term, flavors, images, budget and GPU cap are decided there, in the same transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from aitestbed.policy.admission import Decision
from aitestbed.policy.courses import admit_course_start
from aitestbed.portal import models
from aitestbed.portal.courses.store import rule_of
from aitestbed.portal.usage import as_utc


def student_gpu_hours(session: Session, user_id: int, project_id: int, now: datetime) -> float:
    """GPU-hours one member used in one course: closed sessions as charged, running ones up
    to ``now``, ended jobs as charged. Reads only that member's rows of that course."""
    closed = session.scalar(
        select(func.coalesce(func.sum(models.SessionRecord.gpu_hours), 0.0)).where(
            models.SessionRecord.user_id == user_id,
            models.SessionRecord.project_id == project_id,
            models.SessionRecord.stopped_at.is_not(None),
        )
    )
    running = session.execute(
        select(models.SessionRecord.gpus, models.SessionRecord.started_at).where(
            models.SessionRecord.user_id == user_id,
            models.SessionRecord.project_id == project_id,
            models.SessionRecord.stopped_at.is_(None),
        )
    ).all()
    open_hours = sum(
        max(gpus, 0.0) * max((now - as_utc(start)).total_seconds(), 0.0) / 3600
        for gpus, start in running
    )
    name = session.scalar(select(models.User.name).where(models.User.id == user_id))
    jobs = session.scalar(
        select(func.coalesce(func.sum(models.Job.gpu_hours_charged), 0.0)).where(
            models.Job.owner == name, models.Job.project_id == project_id
        )
    )
    return float(closed) + open_hours + float(jobs)


def course_decision(
    session: Session,
    *,
    user: str,
    project_id: int,
    flavor: str,
    flavor_uses_gpu: bool,
    timezone: str,
    now: datetime,
) -> Decision | None:
    """The course's decision on this start, or None when the project is not a course."""
    project = session.scalar(
        select(models.Project)
        .where(models.Project.id == project_id)
        .options(selectinload(models.Project.course))
    )
    if project is None or project.kind != "course" or project.course is None:
        return None
    user_id = session.scalar(select(models.User.id).where(models.User.name == user))
    role = session.scalar(
        select(models.Membership.course_role).where(
            models.Membership.user_id == user_id, models.Membership.project_id == project_id
        )
    )
    used = (
        student_gpu_hours(session, user_id, project_id, now)
        if flavor_uses_gpu and project.course.student_gpu_hours is not None
        else 0.0
    )
    return admit_course_start(
        rule_of(project, timezone),
        role=role or "student",
        flavor=flavor,
        flavor_uses_gpu=flavor_uses_gpu,
        student_gpu_hours_used=used,
        now=now,
    )
