"""Course pages: your courses and joining one with a code (everyone), and a course's page
with its roster, join codes and roster import (its instructors and assistants)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from aitestbed.portal import models
from aitestbed.portal.courses import enrolment
from aitestbed.portal.courses.api import _detail, _now, _summary_fields
from aitestbed.portal.courses.roster import parse_roster
from aitestbed.portal.courses.store import course_for
from aitestbed.portal.pages import PageUser, form_user, page_user, render


def _courses_of(session, user: PageUser):
    query = select(models.Project.slug).where(models.Project.kind == "course")
    if not user.operator:
        query = query.join(models.Membership).join(models.User).where(models.User.name == user.name)
    views = [
        course_for(session, slug, user.name, user.operator)
        for slug in session.scalars(query.order_by(models.Project.valid_from, models.Project.slug))
    ]
    return [v for v in views if v]


def courses_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def list_view(request: Request, user: PageUser, problem: str = "", status_code: int = 200):
        timezone, now = request.app.state.timezone, _now()
        with request.app.state.sessions() as session:
            courses = [_summary_fields(v, timezone, now) for v in _courses_of(session, user)]
        return render(
            request,
            user,
            "courses/list.html",
            title="Courses",
            current="courses",
            status_code=status_code,
            courses=courses,
            problem=problem,
        )

    def course_view(
        request: Request,
        user: PageUser,
        slug: str,
        notice: str = "",
        problem: str = "",
        problems=(),
        status_code: int = 200,
    ):
        with request.app.state.sessions() as session:
            view = course_for(session, slug, user.name, user.operator)
            if view is None:
                return render(
                    request,
                    user,
                    "message.html",
                    title="No such course",
                    current="courses",
                    status_code=404,
                    message=f"There is no course {slug!r} that you can see.",
                )
            detail = _detail(session, view, request.app.state.timezone, _now())
            codes = []
            if view.staff or view.role is None:
                codes = list(
                    session.scalars(
                        select(models.JoinCode)
                        .where(models.JoinCode.project_id == view.project.id)
                        .order_by(models.JoinCode.id.desc())
                    )
                )
            return render(
                request,
                user,
                "courses/detail.html",
                title=detail.title,
                current="courses",
                status_code=status_code,
                course=detail,
                staff=view.staff or view.role is None,
                codes=[(row, enrolment.shown_code(row.code)) for row in codes],
                notice=notice,
                problem=problem,
                problems=problems,
            )

    @router.get("/courses")
    async def courses_page(request: Request):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        return list_view(request, user)

    @router.get("/courses/{slug}")
    async def course_page(request: Request, slug: str, notice: str = ""):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        return course_view(
            request,
            user,
            slug[:63],
            notice={
                "joined": "You are in the course.",
                "code": "A new join code is ready.",
                "roster": "The roster was imported.",
                "removed": "The member was removed; their files are kept.",
            }.get(notice, ""),
        )

    def staff_view(request: Request, user: PageUser, slug: str):
        with request.app.state.sessions() as session:
            view = course_for(session, slug, user.name, user.operator)
        if view is None or not (view.staff or view.role is None):
            raise HTTPException(404, f"There is no course {slug!r} that you teach.")
        return view

    @router.post("/courses/{slug}/join-codes")
    async def new_code(request: Request, slug: str):
        user, form = await form_user(request)
        view = staff_view(request, user, slug)
        try:
            max_uses = int(form.get("max_uses", ""))
            valid_hours = float(form.get("valid_hours", ""))
            if not (1 <= max_uses <= enrolment.MAX_CODE_USES and 0 < valid_hours <= 8784):
                raise ValueError
        except ValueError:
            return course_view(
                request,
                user,
                slug,
                problem="Give the number of places "
                "(1 to 10,000) and the hours the code is valid (up to a year).",
                status_code=422,
            )
        with request.app.state.sessions() as session, session.begin():
            project = session.get(models.Project, view.project.id)
            enrolment.create_code(
                session,
                project,
                max_uses=max_uses,
                valid_hours=valid_hours,
                created_by=user.name,
                now=_now(),
            )
        return RedirectResponse(f"{request.app.state.prefix}courses/{slug}?notice=code", 303)

    @router.post("/courses/{slug}/join-codes/{code_id}/revoke")
    async def revoke_code(request: Request, slug: str, code_id: int):
        user, _form = await form_user(request)
        view = staff_view(request, user, slug)
        with request.app.state.sessions() as session, session.begin():
            row = session.get(models.JoinCode, code_id)
            if row is not None and row.project_id == view.project.id and row.revoked_at is None:
                row.revoked_at = _now()
        return RedirectResponse(f"{request.app.state.prefix}courses/{slug}", 303)

    @router.post("/courses/{slug}/roster")
    async def roster(request: Request, slug: str):
        user, form = await form_user(request)
        view = staff_view(request, user, slug)
        rows, problems = parse_roster(form.get("roster", ""), request.app.state.known_users)
        if not problems and view.role == "assistant" and any(r.role != "student" for r in rows):
            return course_view(
                request,
                user,
                slug,
                problem="Assistants enrol students; ask an instructor to add staff.",
                status_code=403,
            )
        if problems:
            return course_view(
                request,
                user,
                slug,
                status_code=422,
                problems=[
                    (f"line {p.line}" + (f", {p.column}" if p.column else ""), p.message)
                    for p in problems
                ],
            )
        with request.app.state.sessions() as session, session.begin():
            project = session.get(models.Project, view.project.id)
            enrolment.import_roster(session, project, rows)
        return RedirectResponse(f"{request.app.state.prefix}courses/{slug}?notice=roster", 303)

    @router.post("/courses/{slug}/members/{member}/remove")
    async def remove(request: Request, slug: str, member: str):
        user, _form = await form_user(request)
        view = staff_view(request, user, slug)
        try:
            with request.app.state.sessions() as session, session.begin():
                enrolment.remove(session, session.get(models.Project, view.project.id), member)
        except enrolment.EnrolmentRefused as refused:
            return course_view(request, user, slug, problem=refused.message, status_code=404)
        return RedirectResponse(f"{request.app.state.prefix}courses/{slug}?notice=removed", 303)

    def join_view(
        request: Request, user: PageUser, code: str, problem: str = "", status_code: int = 200
    ):
        return render(
            request,
            user,
            "courses/join.html",
            title="Join a course",
            current="courses",
            code=code,
            problem=problem,
            status_code=status_code,
        )

    @router.get("/join/{code}")
    async def join_page(request: Request, code: str):
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        return join_view(request, user, enrolment.normalise_code(code))

    @router.post("/join")
    async def join(request: Request):
        user, form = await form_user(request)
        code = form.get("code", "")
        try:
            with request.app.state.sessions() as session, session.begin():
                project, _enrolled = enrolment.join(session, code, user.name, _now())
                slug = project.slug
        except enrolment.EnrolmentRefused as refused:
            return join_view(
                request, user, enrolment.normalise_code(code), refused.message, refused.status
            )
        return RedirectResponse(f"{request.app.state.prefix}courses/{slug}?notice=joined", 303)

    return router
