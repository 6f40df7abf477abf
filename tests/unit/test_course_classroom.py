"""The class as its staff see it: server states from the hub's user model, last activity,
GPU-hours used in the course, the CSV export, and nobody else's students."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from aitestbed.portal import models
from aitestbed.portal.courses.classroom import server_state
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.unit.test_courses_api import call, make_app, page, settings_for

NOW = datetime.now(UTC)


def hub_user(name, ready=True, pending=None, seen="2026-11-30T03:00:00.000000Z"):
    server = {"name": "", "ready": ready, "pending": pending, "last_activity": seen}
    return {"name": name, "kind": "user", "servers": {"": server}}


@pytest.mark.parametrize(
    ("model", "state"),
    [
        (None, "stopped"),
        ({"name": "x", "servers": {}}, "stopped"),
        (hub_user("x"), "running"),
        (hub_user("x", ready=False, pending="spawn"), "starting"),
        (hub_user("x", ready=True, pending="stop"), "stopping"),
    ],
)
def test_server_state_from_the_hub_model(model, state):
    assert server_state(model)[0] == state


def test_server_state_keeps_the_hubs_last_activity():
    assert server_state(hub_user("x"))[1] == datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture
def classroom(tmp_path, database_url, monkeypatch):
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    app, engine = make_app(settings_for(tmp_path, database_url))
    answers = {"users": [hub_user("sam"), hub_user("sue"), hub_user("tom", False, "spawn")]}

    async def hub_users():
        if answers["users"] is None:
            raise OSError("connection refused")
        return answers["users"]

    app.state.hub_users = hub_users
    with app.state.sessions() as session, session.begin():
        ids = dict(session.execute(select(models.Project.slug, models.Project.id)).all())
        users = dict(session.execute(select(models.User.name, models.User.id)).all())
        # sam: 2 GPU-hours closed and one GPU running for an hour in dl-101, 7 in ml-201
        for project, gpus, start, stop, hours in (
            ("dl-101", 1.0, NOW - timedelta(hours=5), NOW - timedelta(hours=3), 2.0),
            ("dl-101", 1.0, NOW - timedelta(hours=1), None, None),
            ("ml-201", 1.0, NOW - timedelta(hours=9), NOW - timedelta(hours=2), 7.0),
        ):
            session.add(
                models.SessionRecord(
                    user_id=users["sam"],
                    project_id=ids[project],
                    flavor="a100-1g-10gb",
                    image="python-cpu",
                    gpus=gpus,
                    started_at=start,
                    stopped_at=stop,
                    gpu_hours=hours,
                )
            )
    with TestClient(app) as client:
        yield client, answers
    engine.dispose()


def test_staff_see_each_students_server_activity_and_course_gpu_hours(classroom):
    client, answers = classroom
    rows = {r["user"]: r for r in call(client, "GET", "courses/dl-101/class", "tom").json()}
    assert sorted(rows) == ["ingrid", "sam", "tom"]  # sue is in ml-201, not here
    assert rows["sam"]["server"] == "running" and rows["tom"]["server"] == "starting"
    assert rows["ingrid"]["server"] == "stopped" and rows["ingrid"]["last_activity"] is None
    assert rows["sam"]["last_activity"].startswith("2026-11-30T03:00:00")
    assert 2.99 < rows["sam"]["gpu_hours"] < 3.01  # 2 closed + 1 running, not ml-201's 7
    assert rows["sam"]["open_path"] == "/user/sam/"

    exported = call(client, "GET", "courses/dl-101/class.csv", "ingrid")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["user"] for r in table] == ["ingrid", "sam", "tom"]
    assert table[1]["server"] == "running" and 2.99 < float(table[1]["gpu_hours"]) < 3.01

    answers["users"] = None  # the hub does not answer: the roster stays, states unknown
    rows = call(client, "GET", "courses/dl-101/class", "ingrid").json()
    assert {r["server"] for r in rows} == {"unknown"} and len(rows) == 3
    shown = page(client, "ingrid", "courses/dl-101").text
    assert 'id="hub-unknown"' in shown and 'data-state="unknown"' in shown


def test_the_course_page_shows_states_and_open_links_to_staff_only(classroom):
    client, _answers = classroom
    shown = page(client, "ingrid", "courses/dl-101").text
    assert 'data-user="sam"' in shown and 'data-state="running"' in shown
    assert 'href="/user/sam/"' in shown and 'id="class-csv"' in shown
    assert 'data-user="sue"' not in shown
    mine = page(client, "sam", "courses/dl-101").text
    assert 'id="roster"' not in mine and "/user/tom/" not in mine


@pytest.mark.parametrize("path", ["courses/dl-101/class", "courses/dl-101/class.csv"])
def test_the_class_is_staff_only_and_other_courses_look_missing(classroom, path):
    client, _answers = classroom
    for user, status, code in (
        ("sue", 404, "unknown-course"),
        ("ivan", 404, "unknown-course"),
        ("sam", 403, "not-course-staff"),
    ):
        answer = call(client, "GET", path, user)
        assert answer.status_code == status and answer.json()["detail"]["code"] == code
