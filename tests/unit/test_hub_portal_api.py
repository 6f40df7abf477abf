"""The hub's side of the portal's internal API: the directory endpoints served by the real
portal app over HTTP (uvicorn on a free port, SQLite and PostgreSQL), called through the
hub's own client; the project gate and the single sign-on step on top of them; and the
client's transport (connection slots, retries, timeouts) against small loopback servers."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import uvicorn
from aitestbed.hub.oidc import GRANTS_KEY, PORTAL_UNAVAILABLE, Grants, PortalOIDCAuthenticator
from aitestbed.hub.portal_client import HubPortalClient, PortalRefused, PortalUnavailable
from aitestbed.hub.project_gate import UNAVAILABLE, ProjectGate
from aitestbed.portal import models
from aitestbed.portal.app import create_app
from aitestbed.portal.db import session_factory
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from sqlalchemy import select
from tornado import web

from tests.conftest import EXAMPLE_SETTINGS
from tests.harness import free_port, wait_until
from tests.unit.test_portal_api import PREFIX, TableIdentity

HUB_TOKEN = "hub-secret"


@pytest.fixture
def portal(database_url, monkeypatch):
    """(base URL of a real portal app, its engine)."""
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    app = create_app(
        engine=engine, identity=TableIdentity(), prefix=PREFIX, internal_token=HUB_TOKEN
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="portal app")
    yield f"http://127.0.0.1:{port}{PREFIX}", engine
    server.should_exit = True
    thread.join(timeout=30)
    engine.dispose()


def nowhere() -> HubPortalClient:
    """A client of a portal that is down (nothing listens on the port)."""
    return HubPortalClient(
        f"http://127.0.0.1:{free_port()}{PREFIX}", HUB_TOKEN, queue_timeout=1, backoff=0.05
    )


class _User:
    def __init__(self, name, admin=False):
        self.name, self.admin = name, admin


class _Handler:
    def __init__(self, user):
        self.current_user = user


class _Spawner:
    def __init__(self, user):
        self.user = user


def _memberships(engine, name):
    with session_factory(engine)() as session:
        rows = session.execute(
            select(models.Project.slug, models.Membership.role, models.Membership.source)
            .join(models.Membership.project)
            .join(models.Membership.user)
            .where(models.User.name == name)
            .order_by(models.Project.slug)
        ).all()
    return [(slug, role.value, source.value) for slug, role, source in rows]


async def test_standing_and_sso_grants_through_the_internal_api(portal):
    url, engine = portal
    client = HubPortalClient(url, HUB_TOKEN)
    assert await client.standing("alice") is True  # manager of acme-vision
    assert await client.standing("carol") is False  # in no project
    assert await client.standing("nobody-known") is False

    assert await client.apply_sso_grants(
        "dana", instructor=True, projects=[("acme-vision", "member"), ("no-such", "member")]
    ) == {"added": ["acme-vision"], "removed": [], "updated": [], "course_groups": []}
    assert _memberships(engine, "dana") == [("acme-vision", "member", "sso")]
    assert await client.standing("dana") is True
    # The same grants again change nothing; a new role is an update; none is a removal.
    same = await client.apply_sso_grants(
        "dana", instructor=True, projects=[("acme-vision", "member")]
    )
    assert same == {"added": [], "removed": [], "updated": [], "course_groups": []}
    assert await client.apply_sso_grants(
        "dana", instructor=True, projects=[("acme-vision", "manager")]
    ) == {"added": [], "removed": [], "updated": ["acme-vision"], "course_groups": []}
    assert await client.apply_sso_grants("dana", instructor=False, projects=[]) == {
        "added": [],
        "removed": ["acme-vision"],
        "updated": [],
        "course_groups": [],
    }
    assert _memberships(engine, "dana") == []
    assert await client.standing("dana") is False
    # Memberships from the settings are never touched by single sign-on.
    assert await client.apply_sso_grants("bob", instructor=False, projects=[]) == {
        "added": [],
        "removed": [],
        "updated": [],
        "course_groups": [],
    }
    assert [m[0] for m in _memberships(engine, "bob")] == ["acme-vision", "uni-nlp"]
    # With single sign-on the authenticator sets the hub groups at each login: the portal
    # answers the groups of the user's courses (the demo course dl-101: ingrid teaches it,
    # sam studies in it).
    ingrid = await client.apply_sso_grants("ingrid", instructor=True, projects=[])
    assert ingrid["course_groups"] == ["course.dl-101", "staff.dl-101"]
    sam = await client.apply_sso_grants("sam", instructor=False, projects=[])
    assert sam["course_groups"] == ["course.dl-101"]


async def test_the_directory_answers_only_the_hub_and_names_bad_fields(portal):
    url, _ = portal
    for token in ("t-alice", "hub-secre", ""):
        with pytest.raises(PortalRefused) as refused:
            await HubPortalClient(url, token).standing("alice")
        assert (refused.value.status, refused.value.message) == (
            403,
            "Only the hub may call this endpoint.",
        )
    with pytest.raises(PortalRefused) as refused:
        await HubPortalClient(url, "t-alice").apply_sso_grants(
            "alice", instructor=False, projects=[]
        )
    assert refused.value.status == 403
    with pytest.raises(PortalRefused) as bad:
        await HubPortalClient(url, HUB_TOKEN).apply_sso_grants(
            "dana", instructor=False, projects=[("acme-vision", "owner")]
        )
    assert (bad.value.status, bad.value.message) == (
        422,
        "Invalid session options: projects[0].role.",
    )


async def test_project_gate_holds_users_without_an_active_project(portal):
    url, _ = portal
    gate = ProjectGate(HubPortalClient(url, HUB_TOKEN))
    await gate.require_active_project(_Spawner(_User("alice")))  # manager of acme-vision
    await gate.require_active_project(_Spawner(_User("root", admin=True)))  # never held
    with pytest.raises(web.HTTPError) as refused:
        await gate.require_active_project(_Spawner(_User("carol")))
    assert refused.value.status_code == 403
    assert refused.value.log_message == (
        "You belong to no active project yet, so no server can start. Ask for access at "
        "/services/portal/access - you can start one once an operator approves."
    )
    # The landing page: from what the gate heard at the start above, or after a login.
    assert gate.default_url(_Handler(_User("carol"))) == "/services/portal/access"
    assert gate.default_url(_Handler(_User("alice"))) == ""
    assert gate.default_url(_Handler(None)) == ""
    # Operators land on the operator console.
    assert gate.default_url(_Handler(_User("olivia", admin=True))) == "/services/portal/console"
    model = {"name": "bob"}
    assert await gate.after_login(None, None, model) is model
    assert gate.default_url(_Handler(_User("bob"))) == ""
    # Unknown so far: JupyterHub's own landing now, and the answer is fetched meanwhile.
    assert gate.default_url(_Handler(_User("nobody-known"))) == ""
    await asyncio.wait_for(asyncio.gather(*gate._asking.values()), timeout=30)
    assert gate.default_url(_Handler(_User("nobody-known"))) == "/services/portal/access"


async def test_an_old_answer_is_asked_again_in_the_background(portal):
    url, _ = portal
    now = [0.0]
    gate = ProjectGate(HubPortalClient(url, HUB_TOKEN), refresh_after=60, clock=lambda: now[0])
    await gate.after_login(None, None, {"name": "dana"})
    assert gate.default_url(_Handler(_User("dana"))) == "/services/portal/access"
    await HubPortalClient(url, HUB_TOKEN).apply_sso_grants(
        "dana", instructor=False, projects=[("acme-vision", "member")]
    )
    now[0] = 30.0  # still fresh: the last answer stands, nothing is asked
    assert gate.default_url(_Handler(_User("dana"))) == "/services/portal/access"
    assert gate._asking == {}
    now[0] = 61.0  # old: answered from memory once more, and asked again
    assert gate.default_url(_Handler(_User("dana"))) == "/services/portal/access"
    await asyncio.wait_for(asyncio.gather(*gate._asking.values()), timeout=30)
    assert gate.default_url(_Handler(_User("dana"))) == ""


async def test_portal_down_at_start_and_at_login_is_said_in_one_sentence():
    gate = ProjectGate(nowhere())
    with pytest.raises(web.HTTPError) as held:
        await gate.require_active_project(_Spawner(_User("alice")))
    assert (held.value.status_code, held.value.log_message) == (503, UNAVAILABLE)
    assert UNAVAILABLE == (
        "The portal service did not answer, so your project membership cannot be checked; "
        "try again in a minute."
    )
    # A login still goes on (nothing to write for it); the start decides later.
    model = {"name": "alice"}
    assert await gate.after_login(None, None, model) is model
    assert gate.default_url(_Handler(_User("alice"))) == ""

    # Single sign-on must write the grants first: no login with stale access.
    auth = PortalOIDCAuthenticator(portal_url=nowhere().base_url, portal_token=HUB_TOKEN)
    grants = Grants(True, False, False, (), (("acme-vision", "member"),))
    with pytest.raises(web.HTTPError) as refused:
        await auth._sync_portal({"name": "dana", "auth_state": {GRANTS_KEY: grants.as_json()}})
    assert (refused.value.status_code, refused.value.log_message) == (503, PORTAL_UNAVAILABLE)
    assert PORTAL_UNAVAILABLE == (
        "The portal service did not answer, so your project access cannot be updated; "
        "try to log in again in a minute."
    )


async def test_single_sign_on_step_writes_the_grants(portal):
    url, engine = portal
    auth = PortalOIDCAuthenticator(portal_url=url, portal_token=HUB_TOKEN)
    grants = Grants(True, False, True, (), (("uni-nlp", "manager"),))
    await auth._sync_portal({"name": "erin", "auth_state": {GRANTS_KEY: grants.as_json()}})
    assert _memberships(engine, "erin") == [("uni-nlp", "manager", "sso")]
    with session_factory(engine)() as session:
        erin = session.scalar(select(models.User).where(models.User.name == "erin"))
        assert erin.is_instructor is True


# -- transport ------------------------------------------------------------------------------


class _Scripted(BaseHTTPRequestHandler):
    """Answers each request from ``server.script`` (status, delay), counting requests."""

    def _answer(self):
        server = self.server
        with server.lock:
            server.requests.append((self.command, self.path))
            status, delay = server.script.pop(0) if server.script else server.default
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            time.sleep(delay)
            body = b'{"active_project": true, "id": 1}'
            if status >= 400:
                body = b'{"detail": "busy"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up
        finally:
            with server.lock:
                server.in_flight -= 1

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.requests, server.script, server.default = [], [], (200, 0.0)
    server.in_flight = server.most_in_flight = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _client(server, **options) -> HubPortalClient:
    return HubPortalClient(
        f"http://127.0.0.1:{server.server_address[1]}/p/", HUB_TOKEN, backoff=0.05, **options
    )


async def test_waiting_for_a_connection_does_not_count_against_the_request_timeout(scripted):
    # 12 requests of 0.4 s each through 2 connections: the last waits about 2 s for its
    # turn, five times the 0.4 s a request may take once sent; none fails.
    scripted.default = (200, 0.4)
    client = _client(scripted, max_connections=2, request_timeout=1.5, queue_timeout=30)
    answers = await asyncio.gather(*(client.standing(f"u{i}") for i in range(12)))
    assert answers == [True] * 12
    assert scripted.most_in_flight == 2
    assert len(scripted.requests) == 12


async def test_a_portal_too_busy_for_the_queue_timeout_is_unavailable(scripted):
    scripted.default = (200, 1.0)
    client = _client(scripted, max_connections=1, request_timeout=5, queue_timeout=0.5)
    results = await asyncio.gather(
        client.standing("a"), client.standing("b"), return_exceptions=True
    )
    assert results[0] is True
    assert isinstance(results[1], PortalUnavailable)
    assert "no connection to the portal was free for 0.5 s" in str(results[1])


async def test_503_and_refused_connections_are_retried_with_a_pause(scripted):
    scripted.script = [(503, 0.0), (503, 0.0)]
    client = _client(scripted, retries=3)
    started = time.monotonic()
    assert await client.start_session(user="alice") == {"active_project": True, "id": 1}
    assert len(scripted.requests) == 3  # 503, 503, then the answer
    assert time.monotonic() - started >= 0.05 + 0.1  # paused 0.05 s, then 0.1 s
    scripted.script = [(503, 0.0)] * 4
    with pytest.raises(PortalUnavailable, match="the portal answered 503"):
        await client.standing("alice")
    with pytest.raises(PortalUnavailable, match=r"standing: \[Errno 111\] Connection refused$"):
        await nowhere().standing("alice")


async def test_a_start_that_may_have_reached_the_portal_is_never_sent_twice(scripted):
    # A timeout after sending: the portal may have recorded the session, so no retry.
    scripted.default = (200, 1.0)
    client = _client(scripted, request_timeout=0.3, retries=3)
    with pytest.raises(PortalUnavailable, match="Timeout"):
        await client.start_session(user="alice")
    assert scripted.requests == [("POST", "/p/api/internal/sessions")]
    # Reads and the idempotent stop are repeated.
    scripted.requests.clear()
    with pytest.raises(PortalUnavailable, match="Timeout"):
        await client.stop_session(7)
    assert scripted.requests == [("POST", "/p/api/internal/sessions/7/stop")] * 4


async def test_refusals_are_not_retried(scripted):
    scripted.script = [(403, 0.0)]
    with pytest.raises(PortalRefused) as refused:
        await _client(scripted).standing("alice")
    assert (refused.value.status, refused.value.message) == (403, "busy")
    assert len(scripted.requests) == 1


def test_config_copies_share_the_gate_and_its_client():
    import copy

    from aitestbed.hub.hooks import HookChain

    client = HubPortalClient("http://127.0.0.1:1/p/", HUB_TOKEN)
    gate = ProjectGate(client)
    chain = HookChain()
    chain.add_pre_spawn("project-gate", gate.require_active_project)
    # traitlets deep-copies the config, with the hooks bound to the gate, for each spawner.
    copied = copy.deepcopy({"hook": chain.pre_spawn_hook, "url": gate.default_url})
    assert copied["url"].__self__ is gate
    assert copied["hook"].__self__._pre_spawn[0][1].__self__ is gate
    assert copy.deepcopy(client) is client


def test_a_start_without_a_project_is_refused_in_words_with_the_access_page_as_a_link():
    from aitestbed.hub.project_gate import NoProject

    refusal = NoProject('/x"/services/portal/access')
    assert refusal.status_code == 403
    assert str(refusal) == (
        "You belong to no active project yet, so no server can start. Ask for access at "
        '/x"/services/portal/access - you can start one once an operator approves.'
    )
    assert refusal.jupyterhub_html_message == (
        "You belong to no active project yet, so no server can start. "
        '<a href="/x&quot;/services/portal/access">Ask for access on the access page</a>; '
        "you can start one once an operator approves."
    )
