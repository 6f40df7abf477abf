"""The operator console's project pages: the list with a new-project form, and one project
with its allocation (change, extend, close) and its members."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from aitestbed.portal import models
from aitestbed.portal.db import transaction
from aitestbed.portal.pages import PageUser, form_user, operator_page_user, render
from aitestbed.portal.projects import logic
from aitestbed.portal.projects.logic import ProjectError
from aitestbed.portal.usage import usage_by_project

SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
NUMBERS = {"gpu_hours": float, "max_concurrent_gpus": int, "storage_quota_gb": int}
NOTICES = {
    "created": "The project was created.",
    "changed": "The allocation was saved.",
    "extended": "The allocation was extended.",
    "closed": "The project was closed: no new sessions or jobs; its history stays.",
    "member": "The membership was saved.",
    "removed": "The member was removed.",
}


def _number(text: str, kind) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text  # the schema names the field and says what it wants


def _slugs(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def form_document(form: dict[str, str]) -> dict[str, Any]:
    """The project form as a settings-file entry (empty optional fields left out)."""
    allocation: dict[str, Any] = {
        name: _number(form.get(name, "").strip(), kind) for name, kind in NUMBERS.items()
    }
    allocation["valid_from"] = form.get("valid_from", "").strip()
    allocation["valid_until"] = form.get("valid_until", "").strip()
    if form.get("slurm_account", "").strip():
        allocation["slurm_account"] = form["slurm_account"].strip()
    doc: dict[str, Any] = {
        "slug": form.get("slug", "").strip(),
        "title": form.get("title", ""),
        "description": form.get("description", ""),
        "allocation": allocation,
    }
    for key in ("flavors", "images"):
        if form.get(key, "").strip():
            doc[key] = _slugs(form[key])
    return doc


def form_values(doc: dict[str, Any]) -> dict[str, str]:
    """A settings-file entry as the form's field values."""
    allocation = doc.get("allocation", {})
    values = {k: str(doc.get(k, "")) for k in ("slug", "title", "description")}
    for key in (*NUMBERS, "valid_from", "valid_until", "slurm_account"):
        value = allocation.get(key, "")
        values[key] = f"{value:g}" if isinstance(value, float) else str(value)
    for key in ("flavors", "images"):
        values[key] = ", ".join(doc.get(key) or [])
    return values


def _catalog(session) -> tuple[list[str], list[str]]:
    """The flavor and image names a project may list (the form's hint)."""
    flavors = session.scalars(select(models.Flavor.slug).where(models.Flavor.enabled))
    images = session.scalars(select(models.Image.slug).where(models.Image.enabled))
    return list(flavors), list(images)


def _run(request: Request, work):
    with transaction(request.app.state.sessions) as session:
        return work(session)


def projects_pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def list_page(request, user, *, values=None, problems=(), status_code=200, done=""):
        today = date.today()
        with request.app.state.sessions() as session:
            projects = logic.listing(session)
            rows = [(p, p.status(today), len(p.memberships)) for p in projects]
            flavors, images = _catalog(session)
        return render(
            request,
            user,
            "projects/list.html",
            title="Projects",
            current="projects",
            status_code=status_code,
            rows=rows,
            values=values or {"storage_quota_gb": "0", "valid_from": today.isoformat()},
            problems=problems,
            flavors=flavors,
            images=images,
            notice=NOTICES.get(done, ""),
        )

    def detail_page(request, user, slug, *, problems=(), status_code=200, done="", values=None):
        today = date.today()
        with request.app.state.sessions() as session:
            try:
                project = logic.load(session, slug)
            except ProjectError as error:
                return render(
                    request,
                    user,
                    "message.html",
                    title="No such project",
                    current="projects",
                    status_code=404,
                    message=error.problems[0][1],
                )
            used = usage_by_project(session, [project.id], models.utcnow())[project.id]
            members = sorted(project.memberships, key=lambda m: m.user.name)
            flavors, images = _catalog(session)
            return render(
                request,
                user,
                "projects/detail.html",
                title=f"Project {project.slug}",
                current="projects",
                status_code=status_code,
                project=project,
                status=project.status(today),
                used=used,
                members=members,
                editable_sources=logic.EDITABLE_MEMBERSHIPS,
                values=values or form_values(logic.document(project)),
                problems=problems,
                notice=NOTICES.get(done, ""),
                flavors=flavors,
                images=images,
            )

    @router.get("/projects")
    async def projects_page(request: Request, done: str = ""):
        user = await operator_page_user(request)
        if not isinstance(user, PageUser):
            return user
        return list_page(request, user, done=done)

    @router.post("/projects")
    async def create_project(request: Request):
        user, form = await form_user(request, operator=True)
        doc = form_document(form)
        try:
            _run(request, lambda s: logic.create(s, doc))
        except ProjectError as error:
            values = {k: v for k, v in form.items() if k != "form_token"}
            return list_page(
                request, user, values=values, problems=error.problems, status_code=error.status
            )
        prefix = request.app.state.prefix
        return RedirectResponse(
            f"{prefix}projects/{quote(doc['slug'])}?done=created", status_code=303
        )

    @router.get("/projects/{slug}")
    async def project_page(request: Request, slug: str, done: str = ""):
        user = await operator_page_user(request)
        if not isinstance(user, PageUser):
            return user
        return detail_page(request, user, slug, done=done)

    @router.post("/projects/{slug}/{action}")
    async def project_action(request: Request, slug: str, action: str):
        user, form = await form_user(request, operator=True)
        values = None
        try:
            if action == "change":
                doc = form_document({**form, "slug": slug})
                values = {k: v for k, v in form.items() if k != "form_token"}
                changes = {k: v for k, v in doc.items() if k != "slug"}
                changes.setdefault("flavors", None)
                changes.setdefault("images", None)
                _run(request, lambda s: logic.change(s, slug, changes))
                done = "changed"
            elif action == "extend":
                until = _date(form.get("valid_until", ""), "valid_until")
                extra = _number(form.get("extra_gpu_hours", "0").strip() or "0", float)
                if not isinstance(extra, float) or extra < 0:
                    raise ProjectError(422, [("extra_gpu_hours", "Give a number of 0 or more.")])
                _run(request, lambda s: logic.extend(s, slug, until, extra))
                done = "extended"
            elif action == "close":
                _run(request, lambda s: logic.close(s, slug, date.today()))
                done = "closed"
            elif action == "members":
                member, role = form.get("user", "").strip(), form.get("role", "member")
                _run(request, lambda s: logic.set_member(s, slug, member, role))
                done = "member"
            elif action == "remove-member":
                member = form.get("user", "").strip()
                _run(request, lambda s: logic.remove_member(s, slug, member))
                done = "removed"
            else:
                raise ProjectError(404, [("action", f"Unknown action {action!r}.")])
        except ProjectError as error:
            return detail_page(
                request,
                user,
                slug,
                problems=error.problems,
                status_code=error.status,
                values=values,
            )
        prefix = request.app.state.prefix
        return RedirectResponse(f"{prefix}projects/{quote(slug)}?done={done}", status_code=303)

    return router


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ProjectError(422, [(field, f"{text[:40]!r} is not a date (YYYY-MM-DD).")]) from None
