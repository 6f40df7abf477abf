"""The portal service's web application: REST API (with OpenAPI) and its first page.

Routes live under the service prefix the hub gives (``/services/portal/``) because the proxy
forwards the full path. ``create_app`` is pure wiring; the decisions (who sees which project)
are in ``queries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Engine, text

from aitestbed.gpu_inventory import GpuSource
from aitestbed.portal import errors, queries, schemas
from aitestbed.portal.access_requests.api import access_api_router
from aitestbed.portal.access_requests.pages import access_pages_router
from aitestbed.portal.airlock.logic import AirlockSettings
from aitestbed.portal.auth import STATE_COOKIE, TOKEN_COOKIE, HubIdentity
from aitestbed.portal.courses.api import courses_router, join_router
from aitestbed.portal.datasets.api import datasets_router
from aitestbed.portal.datasets.storage import SizeMeasurer
from aitestbed.portal.db import session_factory
from aitestbed.portal.deps import CurrentUser, DbSession
from aitestbed.portal.directory_api import directory_router
from aitestbed.portal.finite_json import FiniteJsonBodies
from aitestbed.portal.jobs.api import job_error_handler, jobs_router
from aitestbed.portal.jobs.gateway import JobError, JobGateway
from aitestbed.portal.jobs.poller import poll_forever
from aitestbed.portal.notifications import Notifier
from aitestbed.portal.page_routes import feature_routers
from aitestbed.portal.pages import PageUser, landing, page_user
from aitestbed.portal.paging import DEFAULT_PAGE, MAX_PAGE, link_next_page
from aitestbed.portal.reports.exports import reports_router
from aitestbed.portal.revocation import revocation_log
from aitestbed.portal.server_errors import ServerErrorAnswer
from aitestbed.portal.sessions import sessions_router

# What one student's folder may hold when a course collects it: bytes, files.
COLLECT_LIMITS = (200 * 2**20, 10_000)
SLUG_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

try:
    VERSION = version("aitestbed")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0.0.0"


def _today() -> date:
    return date.today()


async def _today_dependency() -> date:
    # Async: a sync dependency costs a hop to the thread pool on every request.
    return _today()


Today = Annotated[date, Depends(_today_dependency)]


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api", responses=schemas.ERRORS)

    @router.get("/health", response_model=schemas.Health, tags=["service"])
    def health(request: Request) -> schemas.Health:
        """Liveness and database reachability; needs no token."""
        try:
            with request.app.state.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            database = "ok"
        except Exception:  # any driver error means the same to a probe
            database = "unreachable"
        status = "ok" if database == "ok" else "degraded"
        return schemas.Health(status=status, database=database, version=VERSION)

    @router.get("/me", response_model=schemas.Me, tags=["users"])
    def me(
        identity: CurrentUser,
        session: DbSession,
        today: Today,
    ) -> schemas.Me:
        """The calling user, whether they are an operator, and their projects."""
        return queries.me(session, identity, today)

    @router.get(
        "/projects",
        response_model=list[schemas.ProjectSummary],
        tags=["projects"],
    )
    def list_projects(
        request: Request,
        response: Response,
        identity: CurrentUser,
        session: DbSession,
        today: Today,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        after: Annotated[
            str, Query(pattern=f"{SLUG_PATTERN}|^$", description="The next page's cursor.")
        ] = "",
    ) -> list[schemas.ProjectSummary]:
        """Projects the caller belongs to, by slug; operators see every project, a page at
        a time (the Link header has the next page)."""
        page = queries.visible_projects(session, identity, today, limit, after)
        link_next_page(request, response, page, limit, after=lambda p: p.slug)
        return page

    @router.get(
        "/projects/{slug}",
        response_model=schemas.ProjectDetail,
        tags=["projects"],
    )
    def get_project(
        slug: Annotated[str, Path(pattern=SLUG_PATTERN, max_length=63)],
        identity: CurrentUser,
        session: DbSession,
        today: Today,
    ) -> schemas.ProjectDetail:
        """One project with its members; 404 unless the caller is a member or an operator."""
        detail = queries.project_detail(session, identity, slug, today)
        if detail is None:
            raise HTTPException(404, f"No project {slug!r} that you can see.")
        return detail

    @router.get("/flavors", response_model=list[schemas.FlavorOut], tags=["catalog"])
    def list_flavors(_identity: CurrentUser, session: DbSession) -> list[schemas.FlavorOut]:
        """The hardware flavors in the catalog."""
        return queries.flavors(session)

    @router.get("/images", response_model=list[schemas.ImageOut], tags=["catalog"])
    def list_images(_identity: CurrentUser, session: DbSession) -> list[schemas.ImageOut]:
        """The curated images in the catalog."""
        return queries.images(session)

    @router.get("/usage", response_model=list[schemas.ProjectUsageOut], tags=["usage"])
    def usage(identity: CurrentUser, session: DbSession) -> list[schemas.ProjectUsageOut]:
        """Allocation, GPU-hours used and running sessions of your projects (operators: all)."""
        return queries.project_usage(session, identity, datetime.now(UTC))

    @router.get(
        "/session-revocations",
        response_model=list[schemas.SessionRevocationOut],
        tags=["usage"],
    )
    def session_revocations(
        identity: CurrentUser, session: DbSession
    ) -> list[schemas.SessionRevocationOut]:
        """The audit log of revocations: sessions whose project access ended, when the user
        was warned and when the server was stopped (newest first, the last 500). Operators
        see everyone's; a user sees their own."""
        rows = revocation_log(
            session, None if queries.is_operator(session, identity) else identity.name
        )
        return [schemas.SessionRevocationOut.model_validate(r, from_attributes=True) for r in rows]

    router.include_router(reports_router())
    return router


def pages_router(site_name: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/oauth_callback")
    async def oauth_callback(request: Request, code: str = "", state: str = ""):
        identity: HubIdentity = request.app.state.identity
        expected = request.cookies.get(STATE_COOKIE)
        nonce, _, next_url = state.partition(":")
        if not code or not expected or nonce != expected:
            raise HTTPException(403, "Login failed: the OAuth state does not match. Try again.")
        token = await identity.token_for_code(code)
        if not token:
            raise HTTPException(403, "Login failed: the hub refused the login code. Try again.")
        prefix = request.app.state.prefix
        if not next_url.startswith(prefix):
            next_url = prefix
        response = RedirectResponse(next_url, status_code=302)
        secure = request.url.scheme == "https"
        response.set_cookie(
            TOKEN_COOKIE, token, httponly=True, samesite="lax", secure=secure, path=prefix
        )
        response.delete_cookie(STATE_COOKIE, path=prefix)
        return response

    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request):
        """Each role lands where its work is (see ``pages.landing``)."""
        user = await page_user(request)
        if not isinstance(user, PageUser):
            return user
        return RedirectResponse(landing(request, user), status_code=302)

    return router


BackgroundTask = Callable[[], Coroutine[Any, Any, None]]


def _lifespan(tasks: Sequence[BackgroundTask]):
    """Run ``tasks`` (pollers, reconcilers) while the app serves; cancel them at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        running = [asyncio.create_task(task()) for task in tasks]
        app.state.background_tasks = running
        app.state.dataset_sizes.resume()
        try:
            yield
        finally:
            app.state.dataset_sizes.close()
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan


def create_app(
    *,
    engine: Engine,
    identity: HubIdentity,
    prefix: str,
    site_name: str = "AI Testbed Portal",
    internal_token: str | None = None,
    jobs: JobGateway | None = None,
    poll_interval: float | None = None,
    background: Sequence[BackgroundTask] = (),
    state_dir: pathlib.Path | None = None,
    dataset_roots: Sequence[pathlib.Path] | None = None,
    airlock: AirlockSettings | None = None,
    notifier: Notifier | None = None,
    timezone: str = "UTC",
    datasets_mount: str | None = None,
    known_users: frozenset[str] | None = None,
    hub_users: Callable[[], Coroutine[Any, Any, list[dict]]] | None = None,
    homes_dir: pathlib.Path | None = None,
    gpu_source: GpuSource | None = None,
) -> FastAPI:
    """The portal application, mounted under ``prefix`` (ends with a slash).

    ``jobs`` is the job gateway (None: the job API answers 503); with ``poll_interval``
    the app runs the gateway's poller while it serves, beside the other ``background``
    tasks. ``dataset_roots``: where the operator API may place local datasets (default:
    the state folder's ``datasets``).
    ``hub_users`` reads the hub's users with a server (the course pages show
    their students' servers; None: the states show as unknown). ``homes_dir`` holds the
    users' homes where the portal can reach them (the embedded mode's; None: collecting a
    folder from a class is not available).
    ``gpu_source`` is this machine's GPUs when the portal gives sessions and local jobs
    their devices (the embedded default; None: it does not).
    """
    if not prefix.endswith("/"):
        prefix += "/"
    tasks = list(background)
    if jobs is not None and poll_interval:
        tasks.append(lambda: poll_forever(jobs, poll_interval))
    app = FastAPI(
        lifespan=_lifespan(tasks),
        title=f"{site_name} API",
        version=VERSION,
        description="Projects, allocations and the catalog of the AI Testbed Portal. "
        "Authenticate with a JupyterHub token: `Authorization: token <token>`.",
        openapi_url=f"{prefix}api/openapi.json",
        docs_url=f"{prefix}api/docs",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.identity = identity
    app.state.prefix = prefix
    app.state.internal_token = internal_token
    app.state.jobs = jobs
    app.state.state_dir = state_dir
    app.state.airlock = airlock
    app.state.timezone = timezone  # the site's: course slots and times shown to users
    app.state.known_users = known_users  # who can log in (None: whoever the provider knows)
    app.state.site_name = site_name
    app.state.datasets_mount = datasets_mount  # where sessions see datasets (None: /datasets)
    app.state.gpu_source = gpu_source
    if dataset_roots is None:
        dataset_roots = [state_dir / "datasets"] if state_dir else []
    app.state.dataset_roots = tuple(dataset_roots)
    app.state.dataset_sizes = SizeMeasurer(app.state.sessions)
    errors.install(app)
    app.add_middleware(FiniteJsonBodies)
    app.state.hub_users = hub_users
    app.state.homes_dir = homes_dir
    app.state.collect_limits = COLLECT_LIMITS
    app.state.notifier = notifier  # operators told of access requests (None: nobody)
    app.add_exception_handler(JobError, job_error_handler)
    # Outermost handler of our own: an error never closes the proxy's kept-alive connection.
    app.add_middleware(ServerErrorAnswer)
    app.include_router(api_router(), prefix=prefix.rstrip("/"))
    app.include_router(sessions_router(), prefix=prefix.rstrip("/"))
    app.include_router(directory_router(), prefix=prefix.rstrip("/"))
    app.include_router(jobs_router(), prefix=prefix.rstrip("/"))
    app.include_router(datasets_router(), prefix=prefix.rstrip("/"))
    app.include_router(join_router(), prefix=prefix.rstrip("/"))
    app.include_router(courses_router(), prefix=prefix.rstrip("/"))
    app.include_router(pages_router(site_name), prefix=prefix.rstrip("/"))
    app.include_router(access_api_router(), prefix=prefix.rstrip("/"))
    app.include_router(access_pages_router(), prefix=prefix.rstrip("/"))
    for router in feature_routers():
        app.include_router(router, prefix=prefix.rstrip("/"))
    return app
