"""Admission: the one place where session starts and job submissions are admitted.

Both take the same lock before they read what the project uses: the project's row of the
ledger (``project_ledger``), upserted as the first statement of the admission transaction.

- On SQLite that first write takes the database's write lock at once (``BEGIN`` is
  deferred, so the lock must come from the first statement, not a later one), and nothing
  else writes until the admission commits: no other admission and no charge, whichever
  process it comes from.
- On PostgreSQL it takes the row lock of the project's ledger row, held to the commit:
  admissions of the same project wait for each other, other projects go on. Charges lock
  the same row (:mod:`aitestbed.portal.ledger`), so what an admission reads under the lock
  cannot change before it has recorded its session or job.

A start with a known number of places for its flavor also locks the flavor's row
(PostgreSQL ``SELECT ... FOR UPDATE``; on SQLite the write lock covers it), always after
the project's, so two admissions never wait for each other in a circle.

The decisions themselves are pure and live elsewhere: :func:`aitestbed.policy.admission.admit`
and :func:`~aitestbed.policy.admission.check_capacity` for sessions,
:func:`aitestbed.portal.quota.admit` for jobs. The caller records the admitted session or
job in the same transaction, before it commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from aitestbed.policy.admission import Decision, admit, check_capacity
from aitestbed.policy.model import FlavorSpec, ImageSpec, ProjectState, SpawnRequest
from aitestbed.portal import models, quota
from aitestbed.portal.courses.admission import course_decision
from aitestbed.portal.usage import ProjectUsage, open_sessions_by_flavor, usage_by_project


def lock_project(session: Session, slug: str) -> int | None:
    """Take the project's admission lock (the transaction's first statement); returns the
    project's id, None when there is no such project (nothing is locked then)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(models.ProjectLedger).from_select(
        ["project_id", "closed_gpu_hours", "admissions"],
        select(models.Project.id, 0.0, 1).where(models.Project.slug == slug),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[models.ProjectLedger.project_id],
        set_={"admissions": models.ProjectLedger.admissions + 1},
    ).returning(models.ProjectLedger.project_id)
    return session.execute(statement).scalar()


def lock_flavor(session: Session, slug: str) -> None:
    """Serialise the starts of one flavor (PostgreSQL; SQLite holds its write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(models.Flavor.id).where(models.Flavor.slug == slug).with_for_update()
        ).all()


# -- what a session admission decides from ------------------------------------------------


def flavor_spec(row: models.Flavor) -> FlavorSpec:
    return FlavorSpec(
        slug=row.slug,
        display_name=row.display_name,
        description=row.description,
        cpu=row.cpu,
        memory=row.memory,
        gpus=row.gpus,
        mig_profile=row.mig_profile,
        gpu_product=row.gpu_product,
        shm=row.shm,
        max_lifetime_hours=row.max_lifetime_hours,
        enabled=row.enabled,
    )


def image_spec(row: models.Image) -> ImageSpec:
    return ImageSpec(
        slug=row.slug,
        display_name=row.display_name,
        description=row.description,
        image=row.image,
        frameworks=tuple(row.frameworks or ()),
        cuda=row.cuda,
        gpu_capable=row.gpu_capable,
        enabled=row.enabled,
    )


def project_state(membership: models.Membership, usage: ProjectUsage) -> tuple[ProjectState, int]:
    project = membership.project
    state = ProjectState(
        slug=project.slug,
        title=project.title,
        role=membership.role.value,
        valid_from=project.valid_from,
        valid_until=project.valid_until,
        gpu_hours_budget=project.gpu_hours_budget,
        gpu_hours_used=usage.gpu_hours_used,
        max_concurrent_gpus=project.max_concurrent_gpus,
        gpus_in_use=usage.gpus_in_use,
        allowed_flavors=tuple(project.allowed_flavors)
        if project.allowed_flavors is not None
        else None,
        allowed_images=tuple(project.allowed_images)
        if project.allowed_images is not None
        else None,
    )
    return state, usage.running_sessions


def user_project_states(
    session: Session, user: str, now: datetime
) -> list[tuple[ProjectState, int, int]]:
    """The user's projects with usage: (state, running sessions, project id)."""
    memberships = list(
        session.scalars(
            select(models.Membership)
            .join(models.User)
            .where(models.User.name == user)
            .options(selectinload(models.Membership.project))
        )
    )
    usage = usage_by_project(session, [m.project_id for m in memberships], now)
    result = []
    for membership in sorted(memberships, key=lambda m: m.project.slug):
        state, running = project_state(membership, usage[membership.project_id])
        result.append((state, running, membership.project_id))
    return result


@dataclass(frozen=True)
class SessionAdmission:
    decision: Decision
    project_id: int | None = None
    flavor: FlavorSpec | None = None


def admit_session(
    session: Session,
    request: SpawnRequest,
    user: str,
    places: int | None,
    now: datetime,
    *,
    timezone: str = "UTC",
) -> SessionAdmission:
    """Lock, then decide one start: the policy's checks, a course's own rules (slots, the
    student's share, the term; ``timezone`` is the site's), then the flavor's places (the
    sessions of that flavor, of every user, open now against ``places``; None: no limit)."""
    lock_project(session, request.project)
    if places is not None:
        lock_flavor(session, request.flavor)
    states = user_project_states(session, user, now)
    flavors = {f.slug: flavor_spec(f) for f in session.scalars(select(models.Flavor))}
    images = {i.slug: image_spec(i) for i in session.scalars(select(models.Image))}
    decision = admit(request, [s for s, _, _ in states], flavors, images, now.date())
    if decision.allowed:
        project_id = next(pid for s, _, pid in states if s.slug == request.project)
        decision = (
            course_decision(
                session,
                user=user,
                project_id=project_id,
                flavor=request.flavor,
                flavor_uses_gpu=flavors[request.flavor].uses_gpu,
                timezone=timezone,
                now=now,
            )
            or decision
        )
    if decision.allowed:
        open_now = open_sessions_by_flavor(session, request.flavor).get(request.flavor, 0)
        decision = check_capacity(request.flavor, open_now, places)
    if not decision.allowed:
        return SessionAdmission(decision)
    project_id = next(pid for s, _, pid in states if s.slug == request.project)
    return SessionAdmission(decision, project_id, flavors[request.flavor])


# -- jobs ---------------------------------------------------------------------------------


def job_usage(session: Session, project_id: int, now: datetime) -> quota.Usage:
    """What the project has used and holds, as the job quota counts it (shared with
    sessions): GPU-hours charged and used by open sessions, time limits the active jobs
    reserve, GPUs of open sessions and active jobs."""
    usage = usage_by_project(session, [project_id], now)[project_id]
    return quota.Usage(
        charged_gpu_hours=usage.gpu_hours_used,
        reserved_gpu_hours=usage.reserved_gpu_hours,
        gpus_in_use=usage.gpus_in_use,
    )


def admit_job(
    session: Session, project: models.Project, gpus: int, time_limit_minutes: float, now: datetime
) -> quota.Refusal | None:
    """Decide one job of ``project`` under the lock :func:`lock_project` took (the caller
    locks first, then loads and checks the project, then calls this)."""
    return quota.admit(
        quota.Allocation(project.gpu_hours_budget, project.max_concurrent_gpus),
        job_usage(session, project.id, now),
        gpus,
        time_limit_minutes,
    )
