"""Course rows in the portal database, kept in line with a course document.

A course is a ``projects`` row of kind ``course`` (term = the project's validity, the
course's allocation = the project's budget and GPU cap, the environment = the project's
allowed flavors and images) plus its ``courses`` row. Staff are project managers and
students members, with the course role beside it, so every project rule applies as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from aitestbed import settings as site_settings
from aitestbed.policy.courses import DAY_NAMES, CourseRule, Slot, course_flavors
from aitestbed.portal import models
from aitestbed.portal.seed import get_or_create_user

STAFF = ("instructor", "assistant")


def project_role(course_role: str) -> models.Role:
    return models.Role.MANAGER if course_role in STAFF else models.Role.MEMBER


def slot_documents(slots: tuple[Slot, ...]) -> list[dict]:
    return [
        {
            "days": [DAY_NAMES[d] for d in s.days],
            "start": f"{s.start:%H:%M}",
            "end": f"{s.end:%H:%M}",
        }
        for s in slots
    ]


def slots_of(row: models.Course) -> tuple[Slot, ...]:
    return tuple(
        Slot(
            days=tuple(sorted(DAY_NAMES.index(d) for d in doc["days"])),
            start=time.fromisoformat(doc["start"]),
            end=time.fromisoformat(doc["end"]),
        )
        for doc in row.slots or ()
    )


def rule_of(project: models.Project, timezone: str) -> CourseRule:
    course = project.course
    return CourseRule(
        slug=project.slug,
        title=project.title,
        timezone=timezone,
        term_start=project.valid_from,
        term_end=project.valid_until,
        slots=slots_of(course),
        outside_slots=course.outside_slots,
        cpu_flavor=course.cpu_flavor,
        student_gpu_hours=course.student_gpu_hours,
    )


def save_course(
    session: Session, spec: site_settings.Course, *, timezone: str, source: str
) -> models.Project:
    """Create or update the course's project and course rows, and the members listed."""
    project = session.scalar(
        select(models.Project)
        .where(models.Project.slug == spec.slug)
        .options(selectinload(models.Project.course))
    )
    if project is None:
        project = models.Project(slug=spec.slug, kind="course")
        session.add(project)
    rule = CourseRule(
        slug=spec.slug,
        title=spec.title,
        timezone=timezone,
        term_start=spec.term_start,
        term_end=spec.term_end,
        outside_slots=spec.outside_slots,
        cpu_flavor=spec.cpu_flavor,
    )
    project.kind = "course"
    project.source = source  # the console's project pages leave a settings course alone
    project.title = spec.title
    project.description = spec.description
    project.gpu_hours_budget = spec.gpu_hours
    project.max_concurrent_gpus = spec.max_concurrent_gpus
    project.valid_from = spec.term_start
    project.valid_until = spec.term_end
    project.allowed_flavors = list(course_flavors(rule, spec.flavor))
    project.allowed_images = [spec.image]
    course = project.course or models.Course()
    course.slots = slot_documents(spec.slots)
    course.outside_slots = spec.outside_slots
    course.image = spec.image
    course.flavor = spec.flavor
    course.cpu_flavor = spec.cpu_flavor
    course.student_gpu_hours = spec.student_gpu_hours
    course.materials_repo = spec.materials_repo
    course.materials_branch = spec.materials_branch
    course.source = source
    project.course = course
    session.flush()
    members = {m.user_id: m for m in project.memberships}
    for member in spec.members:
        enrol(session, project, member.user, member.role, source, members=members)
    return project


def enrol(
    session: Session,
    project: models.Project,
    user_name: str,
    course_role: str,
    source: str,
    *,
    members: dict[int, models.Membership] | None = None,
) -> models.Membership:
    """Add ``user_name`` to the course with ``course_role``, or change their role."""
    user = get_or_create_user(session, user_name)
    if members is None:
        membership = session.scalar(
            select(models.Membership).where(
                models.Membership.user_id == user.id, models.Membership.project_id == project.id
            )
        )
    else:
        membership = members.get(user.id)
    if membership is None:
        membership = models.Membership(user=user, project=project)
        session.add(membership)
    membership.role = project_role(course_role)
    membership.course_role = course_role
    membership.source = (
        models.MembershipSource.SETTINGS
        if source == "settings"
        else models.MembershipSource.REQUEST
    )
    return membership


@dataclass(frozen=True)
class CourseView:
    """A course and the caller's place in it (None: an operator who is not a member)."""

    project: models.Project
    role: str | None

    @property
    def staff(self) -> bool:
        return self.role in STAFF


def course_for(session: Session, slug: str, user: str, operator: bool) -> CourseView | None:
    """The course if the caller may see it (a member, or an operator); else None, the same
    answer as for a course that does not exist."""
    project = session.scalar(
        select(models.Project)
        .where(models.Project.slug == slug, models.Project.kind == "course")
        .options(selectinload(models.Project.course))
    )
    if project is None:
        return None
    role = session.scalar(
        select(models.Membership.course_role)
        .join(models.User)
        .where(models.User.name == user, models.Membership.project_id == project.id)
    )
    if role is None and not operator:
        return None
    return CourseView(project, role)
