"""The portal's pages: one layout and navigation per role, where each role lands, the
operator console's forms (projects, requests, grants, audit), and hostile text escaped on
every page. The hub's token check is replaced by a table, as in test_portal_api."""

from __future__ import annotations

import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from aitestbed.portal import models
from aitestbed.portal.app import create_app
from aitestbed.portal.auth import TOKEN_COOKIE
from aitestbed.portal.db import session_factory
from aitestbed.portal.pages import form_token
from aitestbed.portal.reports.daily import GpuInterval, gpu_hours_per_day
from aitestbed.portal.reports.plot import day_chart
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import EXAMPLE_SETTINGS
from tests.unit.test_portal_api import PREFIX, TableIdentity

USER_PAGES = ["usage", "jobs", "datasets", "access"]
OPERATOR_PAGES = ["console", "requests", "projects", "projects/acme-vision", "catalog", "audit"]
EVERYONE_NAV = ["home", "sessions", "jobs", "datasets", "airlock", "usage", "courses"]
OPERATOR_NAV = ["console", "requests", "projects", "catalog", "audit"]
# Hostile text an operator or a user can type: markup, script, right-to-left override,
# emoji, and long runs without a space.
SCRIPT = "<script>alert('x')</script>"
HOSTILE_TITLE = f"{SCRIPT} \u202eevil\u202c שלום 🚀🧪 " + "W" * 120
HOSTILE_TEXT = "<img src=x onerror=alert(1)> \u202edesrever\u202c مرحبا 👩‍🔬 " + "L" * 1800


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", f"sqlite:///{tmp_path / 'portal.sqlite'}")
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine):
    app = create_app(engine=engine, identity=TableIdentity(), prefix=PREFIX)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def any_db_client(database_url, monkeypatch):
    """As ``client``, on SQLite and on PostgreSQL."""
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    app = create_app(engine=engine, identity=TableIdentity(), prefix=PREFIX)
    with TestClient(app) as test_client:
        yield test_client
    engine.dispose()


def as_user(client, token):
    client.cookies.set(TOKEN_COOKIE, token)
    return client


def post(client, token, path, **form):
    """A page form, as the browser posts it (cookie and the form token)."""
    as_user(client, token)
    data = {"form_token": form_token(token), **form}
    return client.post(PREFIX + path, data=data, follow_redirects=False)


def nav_keys(html: str) -> list[str]:
    return re.findall(r'id="nav-([a-z]+)"', html)


def assert_escaped(html: str) -> None:
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html or "&lt;img src=x" in html


def test_each_role_lands_where_its_work_is(client):
    for token, target in (
        ("t-olivia", "console"),
        ("t-admin", "console"),
        ("t-alice", "usage"),
        ("t-carol", "access"),
    ):
        landed = as_user(client, token).get(PREFIX, follow_redirects=False)
        assert (landed.status_code, landed.headers["location"]) == (302, PREFIX + target)


def test_anonymous_pages_go_to_the_hub_login_and_back():
    class Redirecting(TableIdentity):
        def authorize_redirect(self, next_url):
            return f"/hub/api/oauth2/authorize?next={next_url}", "state-1"

    app = create_app(engine=None, identity=Redirecting(), prefix=PREFIX)
    with TestClient(app) as client:
        for page in ["usage", "projects", "audit?user=bob"]:
            response = client.get(PREFIX + page, follow_redirects=False)
            assert response.status_code == 302
            assert response.headers["location"].endswith(f"next={PREFIX}{page}")


@pytest.mark.parametrize("token", ["t-alice", "t-carol"])
def test_user_pages_have_one_layout_and_the_user_navigation(client, token):
    for page in USER_PAGES:
        html = as_user(client, token).get(PREFIX + page).text
        assert nav_keys(html) == EVERYONE_NAV, page
        assert 'href="/hub/static/css/style.min.css"' in html
        assert 'id="logout"' in html and 'href="/hub/logout"' in html
        assert 'href="/hub/spawn"' in html and 'href="/hub/home"' in html
        assert f'id="signed-in-user">{token[2:]}<' in html
    usage = client.get(PREFIX + "usage").text
    assert (
        'id="nav-usage"\n               href="/services/portal/usage" aria-current="page"' in usage
    )
    for page in OPERATOR_PAGES:
        refused = client.get(PREFIX + page)
        assert refused.status_code == 403, page
        assert "Only operators can open the operator console." in refused.text
        assert nav_keys(refused.text) == EVERYONE_NAV


def test_operator_pages_have_the_console_navigation_with_the_pending_count(client):
    ok = post(client, "t-carol", "access", project="acme-vision", reason="thesis")
    assert ok.status_code == 303
    for page in USER_PAGES + OPERATOR_PAGES:
        response = as_user(client, "t-olivia").get(PREFIX + page)
        assert response.status_code == 200, page
        assert nav_keys(response.text) == EVERYONE_NAV + OPERATOR_NAV, page
        assert re.search(
            r'id="pending-count">1<span class="visually-hidden"> pending', response.text
        )


def test_every_field_has_a_label(client):
    post(client, "t-carol", "access", reason="so the requests page has its forms")
    pages = [("t-carol", "access"), ("t-olivia", "access"), ("t-olivia", "usage")]
    pages += [("t-olivia", p) for p in OPERATOR_PAGES]
    for token, page in pages:
        html = as_user(client, token).get(PREFIX + page).text
        ids = re.findall(
            r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', html
        )
        fields = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*>', html)
        assert len(ids) == len(fields), (page, fields)
        for field_id in ids:
            assert f'for="{field_id}"' in html, (page, field_id)


def test_operator_approves_and_sees_the_decision(client):
    post(client, "t-carol", "access", project="acme-vision", reason=HOSTILE_TEXT)
    html = as_user(client, "t-olivia").get(PREFIX + "requests").text
    (request_id,) = re.findall(r'id="request-(\d+)"', html)
    assert_escaped(html)
    done = post(
        client,
        "t-olivia",
        f"requests/{request_id}/approve",
        project="uni-nlp",
        role="manager",
        note=SCRIPT,
    )
    assert (done.status_code, done.headers["location"]) == (
        303,
        f"{PREFIX}requests?decided={request_id}",
    )
    html = client.get(done.headers["location"]).text
    assert f"Request #{request_id} by carol: approved: carol is now manager of uni-nlp." in html
    assert "No pending requests." in html
    assert f'id="decided-{request_id}" data-status="approved"' in html
    assert 'id="pending-count"' not in html
    assert_escaped(html)
    carol = as_user(client, "t-carol").get(PREFIX + "access").text
    assert "approved: carol is now manager of uni-nlp" in carol
    assert "&lt;script&gt;" in carol and "<script>alert" not in carol


def test_forms_need_the_form_token_and_an_operator(client):
    as_user(client, "t-olivia")
    forged = client.post(
        PREFIX + "projects", data={"form_token": "f" * 64, "slug": "x"}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert forged.json()["detail"].startswith("This form has expired")
    by_user = post(client, "t-alice", "projects", slug="mine", title="Mine")
    assert by_user.status_code == 403
    assert by_user.json()["detail"] == "Only operators can change this."
    with session_factory(client.app.state.engine)() as session:
        assert session.scalar(select(models.Project).where(models.Project.slug == "mine")) is None


def project_form(**changes):
    form = {
        "slug": "newco",
        "title": "NewCo",
        "description": "",
        "gpu_hours": "500",
        "max_concurrent_gpus": "2",
        "storage_quota_gb": "100",
        "valid_from": "2026-01-01",
        "valid_until": "2027-06-30",
        "slurm_account": "",
        "flavors": "cpu-small, a100x1",
        "images": "",
    }
    return {**form, **changes}


def test_operator_creates_changes_extends_and_closes_a_project(client):
    created = post(client, "t-olivia", "projects", **project_form())
    assert (created.status_code, created.headers["location"]) == (
        303,
        f"{PREFIX}projects/newco?done=created",
    )
    html = client.get(created.headers["location"]).text
    assert "The project was created." in html and 'id="project-status">active<' in html
    api = client.get(PREFIX + "api/projects/newco", headers={"Authorization": "token t-olivia"})
    body = api.json()
    assert body["allocation"]["gpu_hours"] == 500.0
    assert body["allowed_flavors"] == ["cpu-small", "a100x1"]
    assert body["allowed_images"] is None

    changed = post(client, "t-olivia", "projects/newco/change", **project_form(gpu_hours="750"))
    assert changed.headers["location"].endswith("?done=changed")
    extended = post(
        client, "t-olivia", "projects/newco/extend", valid_until="2027-12-31", extra_gpu_hours="50"
    )
    assert extended.headers["location"].endswith("?done=extended")
    body = client.get(PREFIX + "api/projects/newco").json()
    assert (body["allocation"]["gpu_hours"], body["allocation"]["valid_until"]) == (
        800.0,
        "2027-12-31",
    )
    earlier = post(client, "t-olivia", "projects/newco/extend", valid_until="2027-01-01")
    assert earlier.status_code == 422
    assert "Give a date after the current end, 2027-12-31." in earlier.text

    added = post(client, "t-olivia", "projects/newco/members", user="carol", role="member")
    assert added.headers["location"].endswith("?done=member")
    me = client.get(PREFIX + "api/me", headers={"Authorization": "token t-carol"}).json()
    assert [(p["slug"], p["role"]) for p in me["projects"]] == [("newco", "member")]
    post(client, "t-olivia", "projects/newco/members", user="carol", role="manager")
    detail = client.get(PREFIX + "api/projects/newco").json()
    assert detail["members"] == [{"user": "carol", "role": "manager"}]

    closed = post(client, "t-olivia", "projects/newco/close")
    assert closed.headers["location"].endswith("?done=closed")
    body = client.get(PREFIX + "api/projects/newco").json()
    assert body["status"] == "expired"
    assert body["allocation"]["valid_until"] == (date.today() - timedelta(days=1)).isoformat()
    removed = post(client, "t-olivia", "projects/newco/remove-member", user="carol")
    assert removed.headers["location"].endswith("?done=removed")
    assert client.get(PREFIX + "api/projects/newco").json()["members"] == []


def test_a_refused_project_names_the_field_and_keeps_what_was_typed(client):
    refused = post(
        client,
        "t-olivia",
        "projects",
        **project_form(
            slug="Bad Slug", gpu_hours="lots", valid_until="2025-01-01", title=HOSTILE_TITLE
        ),
    )
    assert refused.status_code == 422
    html = refused.text
    assert "The form was not saved; correct these fields:" in html
    assert "<b>slug</b>" in html and "<b>allocation.gpu_hours</b>" in html
    assert 'value="Bad Slug"' in html and 'value="lots"' in html
    assert_escaped(html)
    unknown = post(client, "t-olivia", "projects", **project_form(flavors="h200x8"))
    assert unknown.status_code == 422
    assert "<b>flavors[0]</b>: no flavor &#39;h200x8&#39; is defined." in unknown.text
    dates = post(client, "t-olivia", "projects", **project_form(valid_until="2025-01-01"))
    assert "<b>allocation.valid_until</b>: 2025-01-01 is before valid_from 2026-01-01." in (
        dates.text
    )
    taken = post(client, "t-olivia", "projects", **project_form(slug="acme-vision"))
    assert taken.status_code == 409
    assert "<b>slug</b>: A project &#39;acme-vision&#39; exists already." in taken.text


def test_settings_owned_rows_are_read_only(client):
    html = as_user(client, "t-olivia").get(PREFIX + "projects/acme-vision").text
    assert 'id="read-only"' in html and 'id="change-project"' not in html
    assert 'id="close-project"' not in html
    assert "settings file" in html and 'id="add-member"' in html
    # alice's membership comes from the settings file: no change, no removal.
    row = html[html.index('id="member-alice"') :].split("</tr>")[0]
    assert "read-only" in row and "Remove" not in row
    for action, form in (
        ("change", project_form(slug="acme-vision")),
        ("close", {}),
        ("extend", {"valid_until": "2030-01-01"}),
    ):
        refused = post(client, "t-olivia", f"projects/acme-vision/{action}", **form)
        assert refused.status_code == 409, action
        assert "is defined in the site settings file; change it there." in refused.text
    member = post(client, "t-olivia", "projects/acme-vision/remove-member", user="alice")
    assert member.status_code == 409
    assert "This membership comes from the site settings file; change it there." in member.text
    # The API answers the same.
    api = client.patch(
        PREFIX + "api/projects/acme-vision",
        json={"title": "x"},
        headers={"Authorization": "token t-olivia"},
    )
    assert api.status_code == 409
    assert api.json()["errors"][0]["field"] == "slug"


def test_project_api_for_operators_only(client):
    headers = {"Authorization": "token t-olivia"}
    doc = {
        "slug": "api-co",
        "title": "API Co",
        "allocation": {
            "gpu_hours": 10,
            "max_concurrent_gpus": 1,
            "valid_from": "2026-01-01",
            "valid_until": "2026-12-31",
        },
    }
    refused = client.post(
        PREFIX + "api/projects", json=doc, headers={"Authorization": "token t-alice"}
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only operators can change projects."
    made = client.post(PREFIX + "api/projects", json=doc, headers=headers)
    assert made.status_code == 201 and made.json()["status"] == "active"
    bad = client.patch(
        PREFIX + "api/projects/api-co",
        json={"allocation": {"max_concurrent_gpus": -1}},
        headers=headers,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "allocation.max_concurrent_gpus"
    member = client.put(
        PREFIX + "api/projects/api-co/members/dora", json={"role": "manager"}, headers=headers
    )
    assert member.json()["members"] == [{"user": "dora", "role": "manager"}]
    gone = client.delete(PREFIX + "api/projects/api-co/members/dora", headers=headers)
    assert gone.status_code == 204
    again = client.delete(PREFIX + "api/projects/api-co/members/dora", headers=headers)
    assert again.status_code == 404
    assert again.json()["errors"][0]["message"] == "'dora' is not a member of 'api-co'"


def test_a_burst_of_creations_of_one_project_makes_exactly_one(any_db_client):
    """Eight operators press Create for the same short name at once: one project, seven
    clear refusals, no server error."""
    client = as_user(any_db_client, "t-olivia")
    data = {"form_token": form_token("t-olivia"), **project_form(slug="burst")}

    def create(_):
        return client.post(PREFIX + "projects", data=data, follow_redirects=False).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(create, range(8)))
    assert codes == [303] + [409] * 7
    with session_factory(client.app.state.engine)() as session:
        count = len(
            session.scalars(select(models.Project).where(models.Project.slug == "burst")).all()
        )
    assert count == 1


def test_hostile_text_is_escaped_on_every_page(client):
    post(
        client,
        "t-olivia",
        "projects",
        **project_form(title=HOSTILE_TITLE, description=HOSTILE_TEXT),
    )
    post(client, "t-olivia", "projects/newco/members", user="alice", role="member")
    headers = {"Authorization": "token t-olivia"}
    dataset = {
        "slug": "hostile-data",
        "title": HOSTILE_TITLE,
        "description": HOSTILE_TEXT,
        "license": "<b>CC</b>",
        "storage": {"kind": "pvc", "claim": "hostile"},  # the API keeps local ones in roots
        "projects": ["newco"],
    }
    made = client.post(PREFIX + "api/datasets", json=dataset, headers=headers)
    assert made.status_code == 201, made.text
    client.get(PREFIX + "api/datasets", params={"q": SCRIPT}, headers=headers)  # audit detail
    post(client, "t-carol", "access", reason=HOSTILE_TEXT)
    pages = [("t-olivia", p) for p in USER_PAGES + OPERATOR_PAGES + ["projects/newco"]]
    pages += [("t-alice", p) for p in USER_PAGES] + [("t-carol", "access")]
    for token, page in pages:
        html = as_user(client, token).get(PREFIX + page).text
        assert "<script>alert" not in html and "<img src=x" not in html, page
        assert "<b>CC</b>" not in html, page
    seen = {
        "projects": HOSTILE_TITLE,
        "projects/newco": HOSTILE_TEXT,
        "catalog": HOSTILE_TITLE,
        "requests": HOSTILE_TEXT,
        "audit": SCRIPT,
        "usage": HOSTILE_TITLE,
    }
    from markupsafe import escape

    for page, text in seen.items():
        html = as_user(client, "t-olivia").get(PREFIX + page).text
        assert str(escape(text)) in html, page  # shown whole: RTL, emoji and the long run
    alice = as_user(client, "t-alice").get(PREFIX + "datasets").text
    assert str(escape(HOSTILE_TITLE)) in alice


def test_catalog_grants_and_revokes_with_the_api_rules(client):
    granted = post(client, "t-olivia", "catalog/digits/grants", project="uni-nlp")
    assert granted.status_code == 303
    html = client.get(granted.headers["location"]).text
    assert "Granted: digits to uni-nlp." in html
    section = html[html.index('id="catalog-digits"') :].split("</section>")[0]
    assert 'data-project="uni-nlp"' in section
    revoked = post(client, "t-olivia", "catalog/digits/grants/uni-nlp/revoke")
    assert "Revoked: digits from uni-nlp." in client.get(revoked.headers["location"]).text
    settings_grant = post(client, "t-olivia", "catalog/digits/grants/acme-vision/revoke")
    assert settings_grant.status_code == 409
    assert "This grant is in the site settings file; remove it there." in settings_grant.text
    public = post(client, "t-olivia", "catalog/iris/grants", project="uni-nlp")
    assert public.status_code == 409
    assert "The dataset &#39;iris&#39; is public: every user has it." in public.text
    audit = client.get(PREFIX + "api/dataset-audit", params={"action": "grant"}).json()
    assert [(e["dataset"], e["project"], e["user"]) for e in audit] == [
        ("digits", "uni-nlp", "olivia")
    ]


def test_audit_page_filters_and_pages(client, engine):
    with session_factory(engine)() as session, session.begin():
        for i in range(120):
            session.add(
                models.DatasetAuditEntry(
                    at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=i),
                    user="bob" if i % 2 else "alice",
                    dataset="digits",
                    action="view",
                    allowed=bool(i % 3),
                    reason="ok",
                    detail=f"entry {i}",
                )
            )
    as_user(client, "t-olivia")
    first = client.get(PREFIX + "audit", params={"user": "bob"}).text
    assert "60 entries, page 1 of 2." in first
    assert first.count('class="audit-entry"') == 50
    assert "entry 119" in first and 'rel="next"' in first and 'rel="prev"' not in first
    second = client.get(PREFIX + "audit", params={"user": "bob", "page": 2}).text
    assert second.count('class="audit-entry"') == 10 and "entry 1<" in second
    assert 'href="?user=bob&amp;page=1"' in second
    refused = client.get(PREFIX + "audit", params={"allowed": "no", "user": "bob"}).text
    assert "20 entries" in refused
    assert 'href="/services/portal/api/dataset-audit.csv?user=bob&amp;allowed=false"' in refused
    csv = client.get(PREFIX + "api/dataset-audit.csv", params={"user": "bob", "allowed": "false"})
    assert len(csv.text.strip().splitlines()) == 21
    bad = client.get(PREFIX + "audit", params={"user": "Bob!", "since": "yesterday"})
    assert bad.status_code == 422
    assert "<b>user</b>" in bad.text and "<b>since</b>" in bad.text


def test_gpu_hours_per_day_splits_intervals_at_midnight():
    day = date(2026, 11, 10)
    at = lambda d, h: datetime(2026, 11, d, h, tzinfo=UTC)  # noqa: E731
    intervals = [
        GpuInterval(at(9, 22), at(10, 2), 2.0),  # 2 h before the window, 2 h inside
        GpuInterval(at(10, 12), at(12, 6), 1.0),  # over two midnights
        GpuInterval(at(11, 1), at(11, 1), 4.0),  # empty
        GpuInterval(at(13, 0), at(14, 0), 1.0),  # after the window
        GpuInterval(at(11, 0), at(11, 6), 0.0),  # no GPU
    ]
    assert gpu_hours_per_day(intervals, day, 3) == [
        (date(2026, 11, 10), 16.0),
        (date(2026, 11, 11), 24.0),
        (date(2026, 11, 12), 6.0),
    ]
    chart = day_chart(gpu_hours_per_day(intervals, day, 3))
    assert [t.label for t in chart.ticks] == ["0", "6.25", "12.5", "18.75", "25"]
    assert chart.bars[1].label == "2026-11-11: 24 GPU-hours"
    assert chart.bars[1].height > chart.bars[0].height > chart.bars[2].height


def test_usage_page_plots_gpu_hours_per_day(client, engine):
    now = datetime.now(UTC)
    with session_factory(engine)() as session, session.begin():
        project = session.scalar(select(models.Project).where(models.Project.slug == "uni-nlp"))
        bob = session.scalar(select(models.User).where(models.User.name == "bob"))
        session.add(
            models.SessionRecord(
                user_id=bob.id,
                project_id=project.id,
                flavor="a100x1",
                image="pytorch",
                gpus=2.0,
                started_at=now - timedelta(days=3, hours=3),
                stopped_at=now - timedelta(days=3),
                gpu_hours=6.0,
            )
        )
    html = as_user(client, "t-olivia").get(PREFIX + "usage", params={"project": "uni-nlp"}).text
    assert '<svg class="aitb-plot" id="usage-plot"' in html
    assert "GPU-hours per day of uni-nlp, last 30 days" in html
    cells = re.findall(r"<td>(\d{4}-\d\d-\d\d)</td><td class=\"num\">([\d.]+)</td>", html)
    assert len(cells) == 30 and sum(float(v) for _, v in cells) == pytest.approx(6.0)
    other = client.get(PREFIX + "usage", params={"project": "acme-vision"}).text
    other_cells = re.findall(r"<td>\d{4}-\d\d-\d\d</td><td class=\"num\">([\d.]+)</td>", other)
    assert sum(float(v) for v in other_cells) == 0
    assert 'id="export-usage"' in html and 'id="export-records"' in html
    assert 'id="export-usage"' not in as_user(client, "t-bob").get(PREFIX + "usage").text
    month = (now - timedelta(days=3, hours=3)).strftime("%Y-%m")
    records = client.get(
        PREFIX + "api/usage-records.csv",
        params={"month": month},
        headers={"Authorization": "token t-olivia"},
    )
    assert records.headers["content-disposition"] == f'attachment; filename="usage-{month}.csv"'
    (row,) = csv.DictReader(io.StringIO(records.text))
    assert (row["kind"], row["project"], row["user"], row["flavor"], row["gpu_hours"]) == (
        "session",
        "uni-nlp",
        "bob",
        "a100x1",
        "6.0",
    )
    refused = client.get(PREFIX + "api/usage-records.csv", headers={"Authorization": "token t-bob"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only operators can export the usage records."
    bad = client.get(
        PREFIX + "api/usage-records.csv",
        params={"month": "2026-13"},
        headers={"Authorization": "token t-olivia"},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "month"


def test_month_bounds_cross_the_year():
    from aitestbed.portal.reports.api import month_bounds

    assert month_bounds("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert month_bounds("2027-01")[1] == datetime(2027, 2, 1, tzinfo=UTC)


def test_refused_page_forms_say_why_on_the_page(client):
    bad = post(client, "t-carol", "access", project="Not A Slug", reason="x")
    assert bad.status_code == 422
    assert 'id="problem"' in bad.text and "Give the project as its short name" in bad.text
    post(client, "t-carol", "access", reason="first")
    again = post(client, "t-carol", "access", reason="second")
    assert again.status_code == 409
    assert "You already have a pending access request" in again.text
    html = as_user(client, "t-olivia").get(PREFIX + "requests").text
    (request_id,) = re.findall(r'id="request-(\d+)"', html)
    # The request names no project: the operator must pick one (the select always sends one,
    # a hand-made post may not).
    missing = post(client, "t-olivia", f"requests/{request_id}/approve", project="", role="member")
    assert missing.status_code == 422
    assert "The request names no project: say which project to grant" in missing.text
    long_note = post(client, "t-olivia", f"requests/{request_id}/decline", note="n" * 2001)
    assert long_note.status_code == 422
    assert "A note has at most 2,000 characters." in long_note.text
    declined = post(client, "t-olivia", f"requests/{request_id}/decline", note="no")
    assert declined.status_code == 303
    twice = post(client, "t-olivia", f"requests/{request_id}/decline", note="no")
    assert twice.status_code == 409
    assert f"Access request #{request_id} was already declined." in twice.text


def test_console_shows_what_runs_now(client, engine):
    html = as_user(client, "t-olivia").get(PREFIX + "console").text
    assert "No session is running." in html
    with session_factory(engine)() as session, session.begin():
        project = session.scalar(select(models.Project).where(models.Project.slug == "acme-vision"))
        for name, flavor, gpus in (("alice", "a100x1", 1.0), ("bob", "a100x1", 1.0)):
            user = session.scalar(select(models.User).where(models.User.name == name))
            session.add(
                models.SessionRecord(
                    user_id=user.id,
                    project_id=project.id,
                    flavor=flavor,
                    image="pytorch",
                    gpus=gpus,
                )
            )
    html = client.get(PREFIX + "console").text
    row = html[html.index('id="running-by-flavor"') :].split("</table>")[0]
    assert re.search(r"\(a100x1\)</span></td><td class=\"num\">2</td><td class=\"num\">2</td>", row)
    assert "Batch jobs: 0 waiting, 0 running" in html
    assert "2 sessions running now." in html


def test_the_hubs_pages_carry_the_same_top_bar():
    """The hub's own pages (spawn, home, token) show the portal's navigation: the same
    entries in the same order, for everyone and for operators."""
    from tests.harness import REPO

    template = (REPO / "extensions/aitestbed/hub/templates/page.html").read_text()
    assert re.findall(r'id="nav-([a-z]+)"', template) == EVERYONE_NAV + OPERATOR_NAV


def test_console_shows_who_is_starting_and_the_gpu_places(engine):
    """Live capacity: the GPU flavors' free places on this machine's devices, and the
    sessions the hub is starting (waiting for a start slot or starting)."""
    from aitestbed.gpu_inventory import SimulatedSource

    users = [
        {"name": "alice", "servers": {"": {"pending": "spawn", "ready": False}}},
        {"name": "bob", "servers": {"": {"pending": None, "ready": True}}},
        {"name": "dora", "servers": {"lab": {"pending": "spawn", "ready": False}}},
    ]

    async def hub_users():
        return users

    app = create_app(
        engine=engine,
        identity=TableIdentity(),
        prefix=PREFIX,
        hub_users=hub_users,
        gpu_source=SimulatedSource(2),
    )
    with TestClient(app) as client:
        html = as_user(client, "t-olivia").get(PREFIX + "console").text
    assert "Starting now (2, waiting for a start slot or starting): alice, dora/lab." in html
    table = html[html.index('id="gpu-capacity"') :].split("</table>")[0]
    assert re.search(r"<td>a100x1</td><td class=\"num\">2</td><td class=\"num\">2</td>", table)

    async def hub_down():
        raise OSError("connection refused")

    app = create_app(engine=engine, identity=TableIdentity(), prefix=PREFIX, hub_users=hub_down)
    with TestClient(app) as client:
        html = as_user(client, "t-olivia").get(PREFIX + "console").text
    assert "Starting sessions: unknown (the hub does not answer now)." in html
    assert 'id="gpu-capacity"' not in html  # no devices assigned by the portal here
