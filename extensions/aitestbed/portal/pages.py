"""The portal's page kit: one layout, one navigation, login and forms for every page.

Each feature keeps its page routes beside its API (``access_requests/pages.py``,
``projects/pages.py``, ...) and renders Jinja2 templates from ``portal/templates/``, all
extending ``layout.html``: the hub's own stylesheet and logo, so the portal looks like the
hub, and a top bar with the pages of the caller's role. Autoescaping is on for every
template; nothing is marked safe that came from a user, an operator or the settings.

Pages are read with the login cookie (see :mod:`aitestbed.portal.auth`). Forms post with
that cookie, so each form carries a token derived from it (an HMAC a cross-site page cannot
know) and the cookie itself is SameSite=Lax.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from aitestbed.portal import models, queries
from aitestbed.portal.auth import STATE_COOKIE, TOKEN_COOKIE, HubIdentity, Identity
from aitestbed.portal.directory import has_active_project
from aitestbed.portal.queries import pending_requests
from aitestbed.portal.revocation import notices_for

TEMPLATES = Path(__file__).with_name("templates")
MAX_FORM_BYTES = 16_384

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url: str
    badge: int = 0


@dataclass(frozen=True)
class PageUser:
    """Who is looking at a page, and the form token of their login."""

    identity: Identity
    operator: bool
    form_token: str

    @property
    def name(self) -> str:
        return self.identity.name


@dataclass(frozen=True)
class RevocationNotice:
    """A session of the user that lost its project: shown on every page of theirs."""

    project: str
    server_name: str
    reason: str
    stop_at: str  # "HH:MM:SS UTC"
    stopped: bool

    @classmethod
    def of(cls, row: models.SessionRevocation) -> RevocationNotice:
        return cls(
            project=row.project,
            server_name=row.server_name,
            reason=row.reason,
            stop_at=f"{(row.stopped_at or row.stop_at):%Y-%m-%d %H:%M:%S} UTC",
            stopped=row.stopped_at is not None,
        )


def form_token(cookie_token: str) -> str:
    """The anti-forgery token of the page forms, derived from the login cookie."""
    return hmac.new(cookie_token.encode(), b"aitestbed-portal-form", hashlib.sha256).hexdigest()


def hub_base(prefix: str) -> str:
    """The hub's public base URL from the service prefix (``/x/services/portal/`` -> ``/x/``)."""
    head, found, _ = prefix.rpartition("services/")
    return head if found else "/"


def hub_links(prefix: str) -> dict[str, str]:
    base = hub_base(prefix)
    return {
        "home": f"{base}hub/home",
        "spawn": f"{base}hub/spawn",
        "logout": f"{base}hub/logout",
        "logo": f"{base}hub/logo",
        "stylesheet": f"{base}hub/static/css/style.min.css",
    }


def navigation(prefix: str, operator: bool, pending: int = 0) -> list[NavItem]:
    """The top bar of a role: everyone's pages, then the operator console's."""
    links = hub_links(prefix)
    items = [
        NavItem("home", "Home", links["home"]),
        NavItem("sessions", "Sessions", links["spawn"]),
        NavItem("jobs", "Jobs", f"{prefix}jobs"),
        NavItem("datasets", "Datasets", f"{prefix}datasets"),
        NavItem("airlock", "Airlock", f"{prefix}airlock"),
        NavItem("usage", "Usage", f"{prefix}usage"),
        NavItem("courses", "Courses", f"{prefix}courses"),
    ]
    if operator:
        items += [
            NavItem("console", "Console", f"{prefix}console"),
            NavItem("requests", "Requests", f"{prefix}requests", badge=pending),
            NavItem("projects", "Projects", f"{prefix}projects"),
            NavItem("catalog", "Catalog", f"{prefix}catalog"),
            NavItem("audit", "Audit", f"{prefix}audit"),
        ]
    return items


def login_redirect(request: Request, next_url: str) -> RedirectResponse:
    resolver: HubIdentity = request.app.state.identity
    prefix = request.app.state.prefix
    url, state = resolver.authorize_redirect(next_url)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(STATE_COOKIE, state, httponly=True, samesite="lax", path=prefix)
    return response


async def _identity(request: Request) -> tuple[Identity | None, str | None]:
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None, None
    resolver: HubIdentity = request.app.state.identity
    return await resolver.resolve(token), token


async def page_user(request: Request) -> PageUser | RedirectResponse:
    """The signed-in user of a page, or the redirect to the hub's login and back here."""
    identity, token = await _identity(request)
    if identity is None:
        target = request.url.path
        if request.url.query:
            target += f"?{request.url.query}"
        return login_redirect(request, target)
    with request.app.state.sessions() as session:
        operator = queries.is_operator(session, identity)
    return PageUser(identity, operator, form_token(token or ""))


async def operator_page_user(request: Request) -> PageUser | HTMLResponse | RedirectResponse:
    """As :func:`page_user`; anyone but an operator gets a 403 page that says so."""
    user = await page_user(request)
    if isinstance(user, PageUser) and not user.operator:
        return render(
            request,
            user,
            "message.html",
            title="Operators only",
            current="",
            status_code=403,
            message="Only operators can open the operator console. Your own pages are in the "
            "top bar.",
        )
    return user


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the pages post nothing else); the last value of a key wins."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise HTTPException(415, "Send the form as application/x-www-form-urlencoded.")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise HTTPException(413, "The form is too large.")
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


async def form_user(request: Request, *, operator: bool = False) -> tuple[PageUser, dict[str, str]]:
    """The posted form and who posted it, after the login and form-token checks."""
    form = await read_form(request)
    identity, token = await _identity(request)
    if identity is None:
        raise HTTPException(401, "Your login has expired; reload the page to log in again.")
    expected = form_token(token or "")
    if not hmac.compare_digest(expected, form.get("form_token", "")):
        raise HTTPException(403, "This form has expired or did not come from the portal; reload.")
    with request.app.state.sessions() as session:
        is_operator = queries.is_operator(session, identity)
    if operator and not is_operator:
        raise HTTPException(403, "Only operators can change this.")
    return PageUser(identity, is_operator, expected), form


def render(
    request: Request,
    user: PageUser,
    template: str,
    *,
    title: str,
    current: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page in the layout: ``current`` is the key of its entry in the top bar."""
    prefix = request.app.state.prefix
    pending = 0
    with request.app.state.sessions() as session:
        if user.operator:
            pending = pending_requests(session)
        notices = [
            RevocationNotice.of(row) for row in notices_for(session, user.name, datetime.now(UTC))
        ]
    html = environment.get_template(template).render(
        site_name=request.app.state.site_name,
        title=title,
        current=current,
        prefix=prefix,
        hub=hub_links(prefix),
        nav=navigation(prefix, user.operator, pending),
        user=user,
        notices=notices,
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def landing(request: Request, user: PageUser) -> str:
    """Where a role lands: operators on the console, users without a project on the access
    page, everyone else on their usage."""
    prefix = request.app.state.prefix
    if user.operator:
        return f"{prefix}console"
    with request.app.state.sessions() as session:
        active = has_active_project(session, user.name, date.today())
    return f"{prefix}usage" if active else f"{prefix}access"
