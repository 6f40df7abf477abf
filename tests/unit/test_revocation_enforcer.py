"""The portal's revocation enforcer (aitestbed.portal.revocation) on a real database
(SQLite and PostgreSQL) against a loopback stand-in of the hub's API: an operator's removal
and an ended allocation are warned, then stopped after the grace with the record closed;
access restored rescinds; a hub that fails the stop leaves the record open for the next
round."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aitestbed.portal import models
from aitestbed.portal.db import session_factory, transaction
from aitestbed.portal.revocation import HubServers, enforce_once, revocation_log
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from sqlalchemy import select

from tests.conftest import EXAMPLE_SETTINGS
from tests.harness import free_port

GRACE = timedelta(minutes=3)
T0 = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def hub():
    """A stand-in of the hub's REST API: records DELETEs, answers ``status`` (204)."""
    calls: list[tuple[str, str]] = []
    state = {"status": 204}

    class Api(BaseHTTPRequestHandler):
        def do_DELETE(self):
            calls.append((self.path, self.headers["Authorization"]))
            self.send_response(state["status"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield HubServers(f"http://127.0.0.1:{server.server_address[1]}/hub/api", "svc"), calls, state
    server.shutdown()


@pytest.fixture
def sessions(database_url, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    yield session_factory(engine)
    engine.dispose()


def _open_session(sessions, user: str, project: str, server: str = "") -> int:
    with transaction(sessions) as session:
        user_id = session.scalar(select(models.User.id).where(models.User.name == user))
        project_id = session.scalar(select(models.Project.id).where(models.Project.slug == project))
        record = models.SessionRecord(
            user_id=user_id,
            project_id=project_id,
            server_name=server,
            flavor="a100x1",
            image="pytorch",
            gpus=1.0,
            started_at=T0 - timedelta(hours=1),
        )
        session.add(record)
        session.flush()
        return record.id


def _remove_membership(sessions, user: str, project: str) -> None:
    with transaction(sessions) as session:
        membership = session.scalar(
            select(models.Membership)
            .join(models.User)
            .join(models.Project)
            .where(models.User.name == user, models.Project.slug == project)
        )
        session.delete(membership)


def _record(sessions, record_id):
    with sessions() as session:
        return session.get(models.SessionRecord, record_id)


def _enforce(sessions, hub, at):
    return asyncio.run(enforce_once(sessions, hub, at, GRACE))


def test_operator_removal_is_warned_then_stopped_after_the_grace(sessions, hub):
    servers, calls, _state = hub
    record_id = _open_session(sessions, "bob", "acme-vision", server="gpu-run")
    kept = _open_session(sessions, "alice", "acme-vision")
    _remove_membership(sessions, "bob", "acme-vision")

    assert _enforce(sessions, servers, T0) == []
    with sessions() as session:
        (notice,) = revocation_log(session, None)
        assert (notice.user, notice.project, notice.server_name, notice.code) == (
            "bob",
            "acme-vision",
            "gpu-run",
            "membership-removed",
        )
        assert notice.stopped_at is None
    assert calls == []

    assert _enforce(sessions, servers, T0 + GRACE - timedelta(seconds=1)) == []
    assert _enforce(sessions, servers, T0 + GRACE) == [record_id]
    assert calls == [("/hub/api/users/bob/servers/gpu-run", "token svc")]
    record = _record(sessions, record_id)
    assert record.stopped_at is not None
    assert record.gpu_hours == pytest.approx(
        (record.stopped_at - record.started_at).total_seconds() / 3600, rel=1e-6
    )
    assert _record(sessions, kept).stopped_at is None  # alice keeps her access
    with sessions() as session:
        (notice,) = revocation_log(session, "bob")
        assert notice.stopped_at is not None
    # The next round has nothing left to do.
    assert _enforce(sessions, servers, T0 + 2 * GRACE) == []
    assert len(calls) == 1


def test_ended_allocation_is_revoked_with_its_reason(sessions, hub):
    servers, calls, _state = hub
    record_id = _open_session(sessions, "bob", "uni-nlp")
    with transaction(sessions) as session:
        project = session.scalar(select(models.Project).where(models.Project.slug == "uni-nlp"))
        project.valid_until = date.today() - timedelta(days=1)
    _enforce(sessions, servers, T0)
    with sessions() as session:
        (notice,) = revocation_log(session, "bob")
        assert notice.code == "allocation-ended"
        assert notice.reason.startswith("The allocation of project uni-nlp has ended")
    assert _enforce(sessions, servers, T0 + GRACE) == [record_id]
    assert calls == [("/hub/api/users/bob/server", "token svc")]


def test_access_restored_during_the_grace_rescinds_the_warning(sessions, hub):
    servers, calls, _state = hub
    record_id = _open_session(sessions, "bob", "acme-vision")
    _remove_membership(sessions, "bob", "acme-vision")
    _enforce(sessions, servers, T0)
    with transaction(sessions) as session:
        bob = session.scalar(select(models.User).where(models.User.name == "bob"))
        project = session.scalar(select(models.Project).where(models.Project.slug == "acme-vision"))
        session.add(models.Membership(user=bob, project=project, role=models.Role.MEMBER))
    assert _enforce(sessions, servers, T0 + GRACE) == []
    assert calls == []
    assert _record(sessions, record_id).stopped_at is None
    with sessions() as session:
        (notice,) = revocation_log(session, "bob")
        assert notice.rescinded_at is not None


def test_a_hub_that_fails_the_stop_leaves_the_record_open_for_the_next_round(sessions, hub):
    servers, calls, state = hub
    record_id = _open_session(sessions, "bob", "acme-vision")
    _remove_membership(sessions, "bob", "acme-vision")
    _enforce(sessions, servers, T0)
    state["status"] = 500
    assert _enforce(sessions, servers, T0 + GRACE) == []
    assert _record(sessions, record_id).stopped_at is None
    state["status"] = 204
    assert _enforce(sessions, servers, T0 + GRACE + timedelta(seconds=5)) == [record_id]
    assert len(calls) == 2
