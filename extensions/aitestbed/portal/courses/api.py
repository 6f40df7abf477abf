"""Course routes: the catalog of courses a caller may see, the operators' course API (same
ownership rule as datasets: rows from the settings are changed in the settings), roster
imports and join codes for the course's staff, joining with a code for everyone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aitestbed import settings as site_settings
from aitestbed.policy.courses import current_slot, next_opening, opening_words
from aitestbed.portal import models, queries
from aitestbed.portal.courses import enrolment
from aitestbed.portal.courses.roster import parse_roster
from aitestbed.portal.courses.store import CourseView, course_for, rule_of, save_course
from aitestbed.portal.deps import CurrentUser, DbSession

SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
USERNAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
CourseSlug = Annotated[str, PathParam(pattern=SLUG, max_length=63)]
UserName = Annotated[str, PathParam(pattern=USERNAME, max_length=64)]
CourseRole = Literal["instructor", "assistant", "student"]


class Environment(BaseModel):
    image: str
    flavor: str
    cpu_flavor: str | None


class CourseSummary(BaseModel):
    slug: str
    title: str
    role: CourseRole | None = Field(description="The caller's role; null for an operator.")
    term_start: date
    term_end: date
    status: Literal["active", "not-yet-valid", "expired"]
    in_class: bool = Field(description="A class slot is open now.")
    next_class: datetime | None = Field(description="When the next class slot opens.")
    next_class_text: str = Field(description="The same, in words, in the site's time zone.")
    outside_slots: Literal["none", "cpu-only", "allowed"]
    environment: Environment
    student_gpu_hours: float | None
    source: Literal["settings", "api"]


class CourseMemberOut(BaseModel):
    user: str
    role: CourseRole


class CourseDetail(CourseSummary):
    description: str
    slots: list[dict[str, Any]]
    gpu_hours_budget: float
    max_concurrent_gpus: int
    materials_repo: str | None
    materials_branch: str
    members: list[CourseMemberOut] | None = Field(
        description="The roster: for the course's staff and operators only."
    )


class RosterResult(BaseModel):
    added: int
    changed: int
    unchanged: int


class JoinCodeIn(BaseModel):
    max_uses: int = Field(ge=1, le=enrolment.MAX_CODE_USES, strict=True)
    valid_hours: float = Field(gt=0, le=enrolment.MAX_CODE_HOURS, allow_inf_nan=False)


class JoinCodeOut(BaseModel):
    id: int
    code: str
    max_uses: int
    uses: int
    expires_at: datetime
    revoked: bool
    join_path: str = Field(description="The page a logged-in student opens to join.")


class JoinIn(BaseModel):
    code: str = Field(min_length=1, max_length=64)


class Joined(BaseModel):
    course: str
    title: str
    enrolled: bool = Field(description="False when you were already in the course.")


def _refuse(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message})


def _now() -> datetime:
    return datetime.now(UTC)


def _summary_fields(view: CourseView, timezone: str, now: datetime) -> dict[str, Any]:
    project, course = view.project, view.project.course
    rule = rule_of(project, timezone)
    opening = next_opening(rule, now)
    return {
        "slug": project.slug,
        "title": project.title,
        "role": view.role,
        "term_start": project.valid_from,
        "term_end": project.valid_until,
        "status": project.status(now.astimezone(rule.zone).date()),
        "in_class": current_slot(rule, now) is not None,
        "next_class": opening,
        "next_class_text": opening_words(opening, now) if opening else "",
        "outside_slots": course.outside_slots,
        "environment": Environment(
            image=course.image, flavor=course.flavor, cpu_flavor=course.cpu_flavor
        ),
        "student_gpu_hours": course.student_gpu_hours,
        "source": course.source,
    }


def _detail(session, view: CourseView, timezone: str, now: datetime) -> CourseDetail:
    project, course = view.project, view.project.course
    members = None
    if view.staff or view.role is None:  # staff, or an operator (course_for checked)
        members = [
            CourseMemberOut(user=name, role=role)
            for name, role in session.execute(
                select(models.User.name, models.Membership.course_role)
                .join(models.Membership.user)
                .where(models.Membership.project_id == project.id)
                .order_by(models.User.name)
            )
            if role is not None
        ]
    return CourseDetail(
        **_summary_fields(view, timezone, now),
        description=project.description,
        slots=list(course.slots or []),
        gpu_hours_budget=project.gpu_hours_budget,
        max_concurrent_gpus=project.max_concurrent_gpus,
        materials_repo=course.materials_repo,
        materials_branch=course.materials_branch,
        members=members,
    )


def _visible(request: Request, session, slug: str, identity) -> CourseView:
    view = course_for(session, slug, identity.name, queries.is_operator(session, identity))
    if view is None:
        raise _refuse(404, "unknown-course", f"There is no course {slug!r} that you can see.")
    return view


def _staff(request: Request, session, slug: str, identity) -> CourseView:
    """The course if the caller teaches it or is an operator; others get 404 (students)
    or the same 404 as a missing course (everyone else)."""
    view = _visible(request, session, slug, identity)
    if not (view.staff or view.role is None):
        raise _refuse(
            403, "not-course-staff", "Only the course's instructors and assistants may do this."
        )
    return view


def _operator(session, identity) -> None:
    if not queries.is_operator(session, identity):
        raise _refuse(403, "operators-only", "Only operators can create or change courses.")


def _course_document(request: Request, session, doc: Any, slug: str | None = None):
    flavors = [
        {"slug": f.slug, "gpus": f.gpus, "mig_profile": f.mig_profile}
        for f in session.scalars(select(models.Flavor).where(models.Flavor.enabled))
    ]
    images = set(session.scalars(select(models.Image.slug).where(models.Image.enabled)))
    taken = set(session.scalars(select(models.Project.slug))) - {slug}
    try:
        return site_settings.course_from_document(
            doc, flavors=flavors, image_slugs=images, project_slugs=taken
        )
    except site_settings.CourseInvalid as invalid:
        raise HTTPException(
            422, [{"field": where, "message": what} for where, what in invalid.problems]
        ) from None


def _code_out(request: Request, row: models.JoinCode) -> JoinCodeOut:
    return JoinCodeOut(
        id=row.id,
        code=enrolment.shown_code(row.code),
        max_uses=row.max_uses,
        uses=row.uses,
        expires_at=enrolment._aware(row.expires_at),
        revoked=row.revoked_at is not None,
        join_path=f"{request.app.state.prefix}join/{enrolment.shown_code(row.code)}",
    )


def courses_router() -> APIRouter:
    router = APIRouter(prefix="/api/courses", tags=["courses"])

    @router.get("", response_model=list[CourseSummary])
    def list_courses(
        request: Request, identity: CurrentUser, session: DbSession
    ) -> list[CourseSummary]:
        """The courses you are in (operators: every course), by term start."""
        operator = queries.is_operator(session, identity)
        query = select(models.Project.slug).where(models.Project.kind == "course")
        if not operator:
            query = (
                query.join(models.Membership)
                .join(models.User)
                .where(models.User.name == identity.name)
            )
        now = _now()
        timezone = request.app.state.timezone
        views = [
            course_for(session, slug, identity.name, operator)
            for slug in session.scalars(
                query.order_by(models.Project.valid_from, models.Project.slug)
            )
        ]
        return [CourseSummary(**_summary_fields(v, timezone, now)) for v in views if v]

    @router.get("/{slug}", response_model=CourseDetail)
    def get_course(
        slug: CourseSlug, request: Request, identity: CurrentUser, session: DbSession
    ) -> CourseDetail:
        view = _visible(request, session, slug, identity)
        return _detail(session, view, request.app.state.timezone, _now())

    @router.post("", response_model=CourseDetail, status_code=201)
    def create_course(
        request: Request,
        identity: CurrentUser,
        session: DbSession,
        doc: Annotated[dict[str, Any], Body(description="A course as in the settings file.")],
    ) -> CourseDetail:
        """Create a course (operators). Same document and checks as the settings' courses."""
        _operator(session, identity)
        spec = _course_document(request, session, doc)
        timezone = request.app.state.timezone
        save_course(session, spec, timezone=timezone, source="api")
        session.commit()
        view = course_for(session, spec.slug, identity.name, True)
        return _detail(session, view, timezone, _now())

    @router.put("/{slug}", response_model=CourseDetail)
    def replace_course(
        slug: CourseSlug,
        request: Request,
        identity: CurrentUser,
        session: DbSession,
        doc: Annotated[dict[str, Any], Body(description="The whole course document.")],
    ) -> CourseDetail:
        """Change a course made through the API (operators); the settings' own are 409."""
        _operator(session, identity)
        view = _visible(request, session, slug, identity)
        if view.project.course.source == "settings":
            raise _refuse(
                409,
                "settings-owned",
                f"The course {slug!r} comes from the site settings; change it there.",
            )
        if doc.get("slug", slug) != slug:
            raise HTTPException(422, [{"field": "slug", "message": "must stay " + repr(slug)}])
        spec = _course_document(request, session, {**doc, "slug": slug}, slug)
        timezone = request.app.state.timezone
        save_course(session, spec, timezone=timezone, source="api")
        session.commit()
        return _detail(session, course_for(session, slug, identity.name, True), timezone, _now())

    @router.post(
        "/{slug}/roster",
        response_model=RosterResult,
        openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    )
    async def import_roster(
        slug: CourseSlug, request: Request, identity: CurrentUser, session: DbSession
    ) -> RosterResult:
        """Enrol a roster (CSV with a header: user,role). One bad row imports nothing; the
        422 answer lists every bad row and column."""
        view = _staff(request, session, slug, identity)
        raw = await request.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(
                422, [{"line": 0, "column": "", "message": "The file is not UTF-8 text."}]
            ) from None
        rows, problems = parse_roster(text, request.app.state.known_users)
        if problems:
            raise HTTPException(
                422, [{"line": p.line, "column": p.column, "message": p.message} for p in problems]
            )
        if view.role == "assistant" and any(r.role != "student" for r in rows):
            raise _refuse(
                403,
                "instructors-only",
                "Assistants enrol students; ask an instructor to add staff.",
            )
        counts = enrolment.import_roster(session, view.project, rows)
        session.commit()
        return RosterResult(**counts)

    @router.delete("/{slug}/members/{user}", status_code=204)
    def remove_member(
        slug: CourseSlug,
        user: UserName,
        request: Request,
        identity: CurrentUser,
        session: DbSession,
    ) -> Response:
        """End a member's place in the course (their files are kept)."""
        view = _staff(request, session, slug, identity)
        try:
            enrolment.remove(session, view.project, user)
        except enrolment.EnrolmentRefused as refused:
            raise _refuse(refused.status, refused.code, refused.message) from None
        session.commit()
        return Response(status_code=204)

    @router.post("/{slug}/join-codes", response_model=JoinCodeOut, status_code=201)
    def create_join_code(
        slug: CourseSlug,
        body: JoinCodeIn,
        request: Request,
        identity: CurrentUser,
        session: DbSession,
    ) -> JoinCodeOut:
        view = _staff(request, session, slug, identity)
        row = enrolment.create_code(
            session,
            view.project,
            max_uses=body.max_uses,
            valid_hours=body.valid_hours,
            created_by=identity.name,
            now=_now(),
        )
        session.commit()
        return _code_out(request, row)

    @router.get("/{slug}/join-codes", response_model=list[JoinCodeOut])
    def list_join_codes(
        slug: CourseSlug, request: Request, identity: CurrentUser, session: DbSession
    ) -> list[JoinCodeOut]:
        view = _staff(request, session, slug, identity)
        rows = session.scalars(
            select(models.JoinCode)
            .where(models.JoinCode.project_id == view.project.id)
            .order_by(models.JoinCode.id)
        )
        return [_code_out(request, row) for row in rows]

    @router.delete("/{slug}/join-codes/{code_id}", status_code=204)
    def revoke_join_code(
        slug: CourseSlug,
        code_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
        request: Request,
        identity: CurrentUser,
        session: DbSession,
    ) -> Response:
        view = _staff(request, session, slug, identity)
        row = session.get(models.JoinCode, code_id)
        if row is None or row.project_id != view.project.id:
            raise _refuse(404, "unknown-code", f"The course has no join code {code_id}.")
        if row.revoked_at is None:
            row.revoked_at = _now()
        session.commit()
        return Response(status_code=204)

    return router


def join_router() -> APIRouter:
    router = APIRouter(tags=["courses"])

    @router.post("/api/courses/join", response_model=Joined)
    def join_course(body: JoinIn, identity: CurrentUser, session: DbSession) -> Joined:
        """Join a course as a student with the code your instructor gave you."""
        return _join(session, body.code, identity.name)

    return router


def _join(session, code: str, user: str) -> Joined:
    try:
        project, enrolled = enrolment.join(session, code, user, _now())
        session.commit()
    except enrolment.EnrolmentRefused as refused:
        session.rollback()
        raise _refuse(refused.status, refused.code, refused.message) from None
    except IntegrityError:  # the same user joining twice at once: the other one won
        session.rollback()
        project, enrolled = enrolment.join(session, code, user, _now())
    return Joined(course=project.slug, title=project.title, enrolled=enrolled)
