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


def since(moment: datetime) -> float:
    """Hours from ``moment`` until now (a running session's GPU-hours grow meanwhile)."""
    return (datetime.now(UTC) - moment).total_seconds() / 3600


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
    assert 2.999 <= rows["sam"]["gpu_hours"] <= 3.001 + since(NOW)  # 2 closed + 1 running
    assert rows["sam"]["open_path"] == "/user/sam/"

    exported = call(client, "GET", "courses/dl-101/class.csv", "ingrid")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["user"] for r in table] == ["ingrid", "sam", "tom"]
    assert table[1]["server"] == "running"
    assert 2.999 <= float(table[1]["gpu_hours"]) <= 3.001 + since(NOW)  # not ml-201's 7

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


HOSTILE = "Lab at 9 <script>alert('x')</script> & bring \"notes\"\nsecond line"


def test_a_message_to_the_class_reaches_students_everywhere_escaped(classroom):
    from aitestbed.hub.policy_spawner import context_datasets, parse_context
    from aitestbed.hub.spawn_form import render_spawn_form
    from aitestbed.policy.options import spawn_options

    client, _answers = classroom
    posted = call(client, "PUT", "courses/dl-101/message", "tom", json={"text": HOSTILE})
    assert posted.status_code == 200
    assert posted.json()["text"] == HOSTILE and posted.json()["by"] == "tom"

    mine = {c["slug"]: c for c in call(client, "GET", "courses", "sam").json()}
    assert mine["dl-101"]["message"]["text"] == HOSTILE
    theirs = {c["slug"]: c for c in call(client, "GET", "courses", "sue").json()}
    assert theirs["ml-201"]["message"] is None  # another course's class sees nothing

    shown = page(client, "sam", "courses/dl-101").text
    assert "<script>alert" not in shown
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; bring &#34;notes&#34;" in shown

    # The sessions page: the hub renders the portal's spawn context.
    context = client.get(
        "/services/portal/api/internal/spawn-context/sam",
        headers={"Authorization": "token hub-secret"},
    ).json()
    assert context["messages"] == {"dl-101": HOSTILE}
    projects, flavors, images, _running = parse_context(context)
    form = render_spawn_form(
        spawn_options(projects, flavors, images, NOW.date()),
        {},
        messages=context["messages"],
        datasets=context_datasets(context),
    )
    assert "<script>alert" not in form
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; bring &quot;notes&quot;" in form

    withdrawn = call(client, "DELETE", "courses/dl-101/message", "ingrid")
    assert withdrawn.status_code == 204
    assert call(client, "GET", "courses/dl-101", "sam").json()["message"] is None


@pytest.mark.parametrize(
    ("user", "body", "status", "check"),
    [
        ("sam", {"text": "hi"}, 403, "not-course-staff"),
        ("sue", {"text": "hi"}, 404, "unknown-course"),
        ("ivan", {"text": "hi"}, 404, "unknown-course"),
        ("ingrid", {"text": ""}, 422, "text"),
        ("ingrid", {"text": "   "}, 422, "text"),
        ("ingrid", {"text": "x" * 2001}, 422, "text"),
        ("ingrid", {}, 422, "text"),
    ],
)
def test_bad_messages_are_refused(classroom, user, body, status, check):
    client, _answers = classroom
    answer = call(client, "PUT", "courses/dl-101/message", user, json=body)
    assert answer.status_code == status
    body = answer.json()
    if status == 422:  # the portal's one error shape (schemas.Problem)
        assert body["field"] == check, body
        assert [e["field"] for e in body["errors"]] == [check]
    else:
        assert body["detail"]["code"] == check
    assert call(client, "GET", "courses/dl-101", "sam").json()["message"] is None


def test_staff_post_the_message_from_the_course_page(classroom):
    client, _answers = classroom
    posted = page(client, "ingrid", "courses/dl-101/message", message="Bring  <b>data</b>")
    assert posted.status_code == 303 and posted.headers["location"].endswith("?notice=message")
    shown = page(client, "sam", "courses/dl-101").text
    assert 'id="class-message"' in shown and "Bring  &lt;b&gt;data&lt;/b&gt;" in shown
    long = page(client, "ingrid", "courses/dl-101/message", message="x" * 2001)
    assert long.status_code == 422 and "The message is too long" in long.text
    assert page(client, "sam", "courses/dl-101/message", message="hi").status_code == 404
    cleared = page(client, "ingrid", "courses/dl-101/message", message="")
    assert cleared.status_code == 303
    assert 'id="class-message"' not in page(client, "sam", "courses/dl-101").text


def test_the_quota_panel_shows_the_message(tmp_path, database_url, monkeypatch):
    """The notebook's quota panel against the portal app itself."""
    from aitestbed.notebook.client import PortalClient
    from aitestbed.notebook.widgets import QuotaPanel

    from tests.unit.test_courses_api import served

    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    app, engine = make_app(settings_for(tmp_path, database_url))
    try:
        with served(app) as api:
            base = api.removesuffix("api/")
            empty = QuotaPanel(PortalClient(base, "t-sam"))
            assert "aitestbed-course-message" not in "".join(
                getattr(w, "value", "") for w in empty.body.children
            )
            PortalClient(base, "t-ingrid")._request(
                "PUT", "api/courses/dl-101/message", json={"text": HOSTILE}
            )
            panel = QuotaPanel(PortalClient(base, "t-sam"))
            shown = "".join(getattr(w, "value", "") for w in panel.body.children)
            assert "aitestbed-course-message" in shown and "<script>alert" not in shown
            assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in shown
            other = QuotaPanel(PortalClient(base, "t-sue"))
            assert "alert" not in "".join(getattr(w, "value", "") for w in other.body.children)
    finally:
        engine.dispose()
