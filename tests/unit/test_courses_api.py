"""The course API against a real portal app, on SQLite and PostgreSQL: who sees which
course, the operators' ownership rule, roster imports that are all or nothing, join codes
with an exact maximum under a burst, and the course rules of a start."""

from __future__ import annotations

import contextlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
import yaml
from aitestbed.policy.courses import DAY_NAMES
from aitestbed.portal.app import create_app
from aitestbed.portal.auth import Identity
from aitestbed.portal.service import prepare_database
from aitestbed.settings import parse_settings
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLE_SETTINGS
from tests.harness import free_port, wait_until

PREFIX = "/services/portal/"
STUDENTS = [f"student{n:02d}" for n in range(60)]
PEOPLE = ["ingrid", "tom", "sam", "ivan", "sue", "olivia", "alice", "mallory", *STUDENTS]
TODAY = datetime.now(UTC).date()


class TableIdentity:
    async def resolve(self, token):
        name = token.removeprefix("t-")
        return Identity(name, hub_admin=False, scopes=frozenset()) if name in PEOPLE else None


def course(slug, title, members, **changes):
    doc = {
        "slug": slug,
        "title": title,
        "term": {
            "start": str(TODAY - timedelta(days=30)),
            "end": str(TODAY + timedelta(days=60)),
        },
        "slots": [{"days": ["mon", "wed"], "start": "09:00", "end": "12:00"}],
        "environment": {"image": "python-cpu", "flavor": "a100-1g-10gb"},
        "allocation": {"gpu_hours": 100, "max_concurrent_gpus": 2},
        "student_gpu_hours": 5,
        "members": members,
    }
    doc.update(changes)
    return doc


def settings_for(root, database_url, slots=None):
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"].update(
        {"state_dir": str(root / "state"), "database_url": database_url, "timezone": "Asia/Seoul"}
    )
    doc["datasets"] = []
    doc["authentication"]["demo_users"] = [
        {"name": n, "password_hash": "pbkdf2_sha256$1000$c2FsdA$aGFzaA"} for n in PEOPLE
    ]
    doc["courses"] = [
        course(
            "dl-101",
            "Deep Learning 101",
            [
                {"user": "ingrid", "role": "instructor"},
                {"user": "tom", "role": "assistant"},
                {"user": "sam"},
            ],
            **({"slots": slots} if slots is not None else {}),
        ),
        course(
            "ml-201",
            "Machine Learning 201",
            [{"user": "ivan", "role": "instructor"}, {"user": "sue"}],
        ),
    ]
    return parse_settings(yaml.safe_dump(doc), root / "settings.yaml")


def make_app(settings):
    engine = prepare_database(settings)
    app = create_app(
        engine=engine,
        identity=TableIdentity(),
        prefix=PREFIX,
        internal_token="hub-secret",
        timezone=settings.site.timezone,
        known_users=frozenset(PEOPLE),
    )
    return app, engine


@pytest.fixture
def client(tmp_path, database_url, monkeypatch):
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    app, engine = make_app(settings_for(tmp_path, database_url))
    with TestClient(app) as test_client:
        yield test_client
    engine.dispose()


def call(client, method, path, user=None, **kwargs):
    headers = {"Authorization": f"token t-{user}"} if user else {}
    return client.request(method, PREFIX + "api/" + path, headers=headers, **kwargs)


def test_each_person_sees_their_courses_and_staff_see_the_roster(client):
    assert [c["slug"] for c in call(client, "GET", "courses", "sam").json()] == ["dl-101"]
    assert [c["slug"] for c in call(client, "GET", "courses", "olivia").json()] == [
        "dl-101",
        "ml-201",
    ]
    assert call(client, "GET", "courses", "alice").json() == []
    mine = call(client, "GET", "courses/dl-101", "sam").json()
    assert mine["role"] == "student" and mine["members"] is None  # no roster for students
    assert mine["environment"] == {
        "image": "python-cpu",
        "flavor": "a100-1g-10gb",
        "cpu_flavor": "cpu-small",
    }
    assert mine["next_class_text"].endswith("at 09:00 (Asia/Seoul)")
    roster = call(client, "GET", "courses/dl-101", "tom").json()["members"]
    assert roster == [
        {"user": "ingrid", "role": "instructor"},
        {"user": "sam", "role": "student"},
        {"user": "tom", "role": "assistant"},
    ]


@pytest.mark.parametrize(
    ("user", "method", "path", "body"),
    [
        ("sue", "GET", "courses/dl-101", None),  # a student of another course
        ("ivan", "GET", "courses/dl-101", None),  # the instructor of another course
        ("ivan", "POST", "courses/dl-101/join-codes", {"max_uses": 5, "valid_hours": 1}),
        ("ivan", "DELETE", "courses/dl-101/members/sam", None),
        ("ivan", "GET", "courses/dl-101/join-codes", None),
        ("alice", "GET", "courses/dl-101", None),
        ("olivia", "GET", "courses/no-such-course", None),
    ],
)
def test_other_courses_look_like_missing_ones(client, user, method, path, body):
    answer = call(client, method, path, user, json=body)
    assert answer.status_code == 404
    assert answer.json()["detail"]["code"] == "unknown-course"


def test_students_cannot_act_as_staff(client):
    for method, path, body in (
        ("POST", "courses/dl-101/join-codes", {"max_uses": 5, "valid_hours": 1}),
        ("DELETE", "courses/dl-101/members/tom", None),
        ("GET", "courses/dl-101/join-codes", None),
    ):
        answer = call(client, method, path, "sam", json=body)
        assert answer.status_code == 403 and answer.json()["detail"]["code"] == "not-course-staff"
    assert call(client, "GET", "courses", None).status_code == 401


def test_roster_import_is_all_or_nothing_and_names_every_bad_row(client):
    bad = (
        "user,role,name\n"
        "student01,student,Ann\n"
        "student01,student,Ann again\n"
        "Robert'); DROP TABLE users;--,student,x\n"
        "student02,professor,y\n"
        "nobody-here,student,z\n"
        "student03,,default role\n"
    )
    answer = call(client, "POST", "courses/dl-101/roster", "ingrid", content=bad)
    assert answer.status_code == 422
    assert [(p["line"], p["column"]) for p in answer.json()["detail"]] == [
        (3, "user"),
        (4, "user"),
        (5, "role"),
        (6, "user"),
    ]
    assert "already on line 2" in answer.json()["detail"][0]["message"]
    roster = call(client, "GET", "courses/dl-101", "ingrid").json()["members"]
    assert [m["user"] for m in roster] == ["ingrid", "sam", "tom"]  # nothing imported

    good = "user,role\nstudent01\nstudent02,student\nsam,assistant\n"
    answer = call(client, "POST", "courses/dl-101/roster", "ingrid", content=good)
    assert answer.json() == {"added": 2, "changed": 1, "unchanged": 0}
    staff = call(
        client, "POST", "courses/dl-101/roster", "tom", content="user,role\nstudent04,instructor\n"
    )
    assert staff.status_code == 403 and staff.json()["detail"]["code"] == "instructors-only"


def test_join_codes_enrol_until_expired_used_up_or_revoked(client):
    made = call(
        client,
        "POST",
        "courses/dl-101/join-codes",
        "ingrid",
        json={"max_uses": 2, "valid_hours": 2},
    )
    assert made.status_code == 201
    code = made.json()["code"]
    assert made.json()["join_path"] == f"{PREFIX}join/{code}"
    first = call(client, "POST", "courses/join", "student10", json={"code": code.lower()})
    assert first.json() == {"course": "dl-101", "title": "Deep Learning 101", "enrolled": True}
    again = call(client, "POST", "courses/join", "student10", json={"code": code})
    assert again.json()["enrolled"] is False  # no second place taken
    assert call(client, "POST", "courses/join", "student11", json={"code": code}).status_code == 200
    full = call(client, "POST", "courses/join", "student12", json={"code": code})
    assert full.status_code == 409 and full.json()["detail"]["code"] == "code-used-up"
    unknown = call(client, "POST", "courses/join", "student12", json={"code": "ZZZZ-ZZZZ"})
    assert unknown.status_code == 404 and unknown.json()["detail"]["code"] == "unknown-code"

    other = call(
        client, "POST", "courses/dl-101/join-codes", "tom", json={"max_uses": 5, "valid_hours": 1}
    ).json()
    assert (
        call(client, "DELETE", f"courses/dl-101/join-codes/{other['id']}", "tom").status_code == 204
    )
    revoked = call(client, "POST", "courses/join", "student13", json={"code": other["code"]})
    assert revoked.status_code == 410 and revoked.json()["detail"]["code"] == "code-revoked"
    assert (
        call(client, "DELETE", f"courses/ml-201/join-codes/{other['id']}", "ivan").status_code
        == 404
    )
    for body in (
        {"max_uses": 0, "valid_hours": 1},
        {"max_uses": True, "valid_hours": 1},
        {"max_uses": 2, "valid_hours": 1e9},
    ):
        assert (
            call(client, "POST", "courses/dl-101/join-codes", "ingrid", json=body).status_code
            == 422
        )


def test_removal_ends_the_membership(client):
    assert call(client, "DELETE", "courses/dl-101/members/sam", "tom").status_code == 204
    assert call(client, "GET", "courses", "sam").json() == []
    gone = call(client, "DELETE", "courses/dl-101/members/sam", "tom")
    assert gone.status_code == 404 and gone.json()["detail"]["code"] == "not-a-member"


def test_operators_create_courses_and_settings_owned_ones_are_refused(client):
    doc = course(
        "nlp-301", "NLP 301", [{"user": "ivan", "role": "instructor"}], outside_slots="cpu-only"
    )
    assert call(client, "POST", "courses", "ivan", json=doc).status_code == 403
    made = call(client, "POST", "courses", "olivia", json=doc)
    assert made.status_code == 201 and made.json()["source"] == "api"
    assert made.json()["environment"]["cpu_flavor"] == "cpu-small"
    changed = call(client, "PUT", "courses/nlp-301", "olivia", json={**doc, "title": "NLP 302"})
    assert changed.json()["title"] == "NLP 302"
    owned = call(client, "PUT", "courses/dl-101", "olivia", json=course("dl-101", "x", []))
    assert owned.status_code == 409 and owned.json()["detail"]["code"] == "settings-owned"
    taken = call(client, "POST", "courses", "olivia", json=course("acme-vision", "x", []))
    assert taken.status_code == 422 and taken.json()["detail"][0]["field"] == "slug"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "slots": [
                    {"days": ["mon"], "start": "09:00", "end": "11:00"},
                    {"days": ["mon", "tue"], "start": "10:30", "end": "12:00"},
                ]
            },
            "slots[1]",
        ),
        ({"slots": [{"days": ["mon"], "start": "12:00", "end": "09:00"}]}, "slots[0].end"),
        ({"slots": [{"days": ["mon"], "start": "25:00", "end": "26:00"}]}, "slots[0].start"),
        ({"environment": {"image": "python-cpu", "flavor": "no-such"}}, "environment.flavor"),
        ({"environment": {"image": "<script>", "flavor": "cpu-small"}}, "environment.image"),
        ({"term": {"start": "2026-12-01", "end": "2026-11-01"}}, "term.end"),
        ({"title": "x" * 500}, "title"),
    ],
)
def test_bad_course_documents_are_refused_naming_the_field(client, change, field):
    doc = {**course("bad-course", "Bad", []), **change}
    answer = call(client, "POST", "courses", "olivia", json=doc)
    assert answer.status_code == 422
    assert field in [p["field"] for p in answer.json()["detail"]]
    assert call(client, "GET", "courses/bad-course", "olivia").status_code == 404


@contextlib.contextmanager
def served(app):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="portal app")
    try:
        yield f"http://127.0.0.1:{port}{PREFIX}api/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_burst_of_joins_takes_exactly_the_codes_places(tmp_path, database_url, monkeypatch):
    """50 students join at the same moment with a code for 20: exactly 20 are in."""
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    app, engine = make_app(settings_for(tmp_path, database_url))
    with served(app) as api:
        code = httpx.post(
            api + "courses/dl-101/join-codes",
            json={"max_uses": 20, "valid_hours": 1},
            headers={"Authorization": "token t-ingrid"},
        ).json()["code"]

        def join(name):
            return httpx.post(
                api + "courses/join",
                json={"code": code},
                headers={"Authorization": f"token t-{name}"},
                timeout=60,
            )

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(join, STUDENTS[:50]))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200] * 20 + [409] * 30, [a.text for a in answers if a.status_code >= 500]
        roster = httpx.get(api + "courses/dl-101", headers={"Authorization": "token t-ingrid"})
        students = [m for m in roster.json()["members"] if m["role"] == "student"]
        assert len(students) == 21  # sam and the 20
        listed = httpx.get(
            api + "courses/dl-101/join-codes", headers={"Authorization": "token t-ingrid"}
        )
        assert listed.json()[0]["uses"] == 20
    engine.dispose()


def start(client, user, flavor):
    return client.post(
        PREFIX + "api/internal/sessions",
        json={"user": user, "project": "dl-101", "flavor": flavor, "image": "python-cpu"},
        headers={"Authorization": "token hub-secret"},
    )


def test_a_start_outside_class_slots_is_refused_with_the_next_opening(tmp_path, monkeypatch):
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    seoul_day = datetime.now(ZoneInfo("Asia/Seoul")).weekday()
    other_day = DAY_NAMES[(seoul_day + 3) % 7]  # never today in Seoul: outside the slot
    slots = [{"days": [other_day], "start": "09:00", "end": "12:00"}]
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'p.sqlite'}", slots)
    app, engine = make_app(settings)
    with TestClient(app) as client:
        refused = start(client, "sam", "a100-1g-10gb")
        assert refused.status_code == 403
        assert refused.json()["detail"]["code"] == "outside-class-slot"
        message = refused.json()["detail"]["message"]
        assert message.startswith("Deep Learning 101 is open only during its class slots.")
        assert "at 09:00 (Asia/Seoul)." in message
        assert start(client, "ingrid", "a100-1g-10gb").status_code == 201  # staff prepare
        assert start(client, "alice", "a100-1g-10gb").status_code == 403  # not in the course
    engine.dispose()


# -- the pages ---------------------------------------------------------------------------


def page(client, user, path, **form):
    from aitestbed.portal.auth import TOKEN_COOKIE
    from aitestbed.portal.pages import form_token

    client.cookies.set(TOKEN_COOKIE, f"t-{user}")
    if form:
        data = {"form_token": form_token(f"t-{user}"), **form}
        return client.post(PREFIX + path, data=data, follow_redirects=False)
    return client.get(PREFIX + path, follow_redirects=False)


def test_instructor_pages_code_join_and_roster(client):
    listing = page(client, "ingrid", "courses")
    assert 'id="nav-courses"' in listing.text and "Deep Learning 101" in listing.text
    course = page(client, "ingrid", "courses/dl-101").text
    assert (
        'data-user="sam"' in course and 'id="new-code"' in course and 'id="roster-import"' in course
    )

    made = page(client, "ingrid", "courses/dl-101/join-codes", max_uses="3", valid_hours="24")
    assert made.status_code == 303 and made.headers["location"].endswith("?notice=code")
    shown = re.search(
        r"<code>([A-Z0-9]{4}-[A-Z0-9]{4})</code>", page(client, "ingrid", "courses/dl-101").text
    )
    code = shown.group(1)

    join_page = page(client, "student20", f"join/{code}")
    assert join_page.status_code == 200 and f'value="{code}"' in join_page.text
    joined = page(client, "student20", "join", code=code)
    assert joined.status_code == 303 and joined.headers["location"].endswith(
        "courses/dl-101?notice=joined"
    )
    mine = page(client, "student20", "courses/dl-101?notice=joined").text
    assert "You are in the course." in mine and 'id="roster"' not in mine  # no roster for students
    wrong = page(client, "student21", "join", code="NOPE-NOPE")
    assert wrong.status_code == 404 and "No course has this join code" in wrong.text

    bad = page(
        client,
        "ingrid",
        "courses/dl-101/roster",
        roster="user,role\n<b>x</b>,student\nstudent30,boss\n",
    )
    assert bad.status_code == 422
    assert "line 2, user" in bad.text and "line 3, role" in bad.text
    assert "<b>x</b>" not in bad.text and "&lt;b&gt;x&lt;/b&gt;" in bad.text  # escaped
    good = page(client, "ingrid", "courses/dl-101/roster", roster="user,role\nstudent30\n")
    assert good.status_code == 303
    assert 'data-user="student30"' in page(client, "ingrid", "courses/dl-101").text

    assert (
        page(client, "sam", "courses/dl-101/roster", roster="user\nstudent31\n").status_code == 404
    )
    assert page(client, "ivan", "courses/dl-101").status_code == 404  # another course's staff
    removed = page(client, "tom", "courses/dl-101/members/student30/remove", x="1")
    assert removed.status_code == 303
    assert 'data-user="student30"' not in page(client, "ingrid", "courses/dl-101").text
