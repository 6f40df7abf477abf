"""Lists page with a cursor and exports stream: the costs that must not grow with history.

- every API list has a default and a maximum page size and a stable order; following the
  ``Link: rel="next"`` header while rows are being added sees each row exactly once;
- the CSV exports (usage, usage records, dataset audit log) stream: peak memory while
  exporting tens of thousands of rows stays under a bound far below the export's size,
  and values that a spreadsheet would run as formulas stay inert.

The portal runs in-process against SQLite and a real PostgreSQL server, with the hub's token
check replaced by a table of known tokens (as in test_portal_api).
"""

from __future__ import annotations

import csv
import io
import re
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from aitestbed.portal import models
from aitestbed.portal.app import create_app
from aitestbed.portal.db import session_factory
from aitestbed.portal.jobs.gateway import JobGateway
from aitestbed.portal.paging import DEFAULT_PAGE, MAX_PAGE
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from tests.conftest import EXAMPLE_SETTINGS
from tests.unit.test_portal_api import PREFIX, TableIdentity

OPERATOR = {"Authorization": "token t-olivia"}
ALICE = {"Authorization": "token t-alice"}
START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def portal(database_url, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    settings = load_settings(EXAMPLE_SETTINGS)
    engine = prepare_database(settings)
    # The job list never reaches the backend: a gateway without one serves it.
    gateway = JobGateway(session_factory(engine), settings, backend=None)
    app = create_app(engine=engine, identity=TableIdentity(), prefix=PREFIX, jobs=gateway)
    with TestClient(app) as client:
        yield client, engine
    engine.dispose()


def _ids(engine, query):
    with session_factory(engine)() as session:
        return session.scalars(query).all()


def _add_audit_entries(engine, count, *, user="bob", detail=""):
    rows = [
        {
            "at": START + timedelta(seconds=i),
            "user": user,
            "dataset": f"ds-{i % 97}",
            "action": "view",
            "allowed": i % 3 != 0,
            "reason": "ok",
            "project": "acme-vision",
            "detail": detail,
        }
        for i in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(insert(models.DatasetAuditEntry), rows)


def _add_jobs(engine, count, owner="alice"):
    with session_factory(engine)() as session, session.begin():
        project = session.scalar(select(models.Project).where(models.Project.slug == "acme-vision"))
        for _ in range(count):
            session.add(_job(project.id, owner))


def _job(project_id, owner, **fields):
    uid = f"j{datetime.now(UTC).timestamp():.6f}-{id(fields)}-{len(fields)}"
    return models.Job(
        **{
            "uid": uid[-32:],
            "owner": owner,
            "unix_user": owner,
            "project_id": project_id,
            "name": "train",
            "kind": "script",
            "spec": {},
            "backend": "local",
            "state": "COMPLETED",
            "partition": "gpu",
            "nodes": 1,
            "gpus_per_node": 2,
            "time_limit_minutes": 60,
            "working_dir": "/w",
            "output_path": "/w/out",
            **fields,
        }
    )


def _follow(client, url, headers, between_pages=None):
    """Every item of every page, following the Link header; ``between_pages()`` runs after
    each page (to add rows while paging)."""
    seen, pages = [], 0
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(body["items"] if isinstance(body, dict) else body)
        pages += 1
        link = response.headers.get("link")
        url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1) if link else None
        if between_pages:
            between_pages()
    return seen, pages


# -- paging -------------------------------------------------------------------------------


def test_audit_log_pages_exactly_while_entries_are_added(portal):
    client, engine = portal
    _add_audit_entries(engine, 95)
    before = set(_ids(engine, select(models.DatasetAuditEntry.id)))
    seen, pages = _follow(
        client,
        PREFIX + "api/dataset-audit?limit=10&user=bob",
        OPERATOR,
        between_pages=lambda: _add_audit_entries(engine, 3),
    )
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)) == 95  # no entry twice, none missed, no new one
    assert set(ids) == before and ids == sorted(ids, reverse=True)
    assert pages == 10
    # Filters stay on the next page's link; an offset does not.
    link = client.get(PREFIX + "api/dataset-audit?limit=5&offset=2&user=bob", headers=OPERATOR)
    assert "user=bob" in link.headers["link"] and "offset" not in link.headers["link"]


def test_jobs_page_with_default_and_maximum(portal):
    client, engine = portal
    _add_jobs(engine, DEFAULT_PAGE + 5)
    _add_jobs(engine, 2, owner="bob")
    first = client.get(PREFIX + "api/jobs", headers=ALICE)
    assert len(first.json()) == DEFAULT_PAGE and "before=" in first.headers["link"]
    seen, pages = _follow(
        client,
        PREFIX + "api/jobs?limit=30",
        ALICE,
        between_pages=lambda: _add_jobs(engine, 4),
    )
    ids = [j["id"] for j in seen]
    assert len(ids) == len(set(ids)) == DEFAULT_PAGE + 5 and pages == 4
    assert {j["owner"] for j in seen} == {"alice"}
    too_many = client.get(PREFIX + f"api/jobs?limit={MAX_PAGE + 1}", headers=ALICE)
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["query", "limit"]
    last = client.get(PREFIX + "api/jobs?limit=500&before=3", headers=ALICE)
    assert [j["id"] for j in last.json()] == [2, 1] and "link" not in last.headers


def test_access_requests_page_while_requests_arrive(portal):
    client, engine = portal

    def add(count, offset=[0]):  # noqa: B006 - a counter across calls
        with session_factory(engine)() as session, session.begin():
            for _ in range(count):
                offset[0] += 1
                user = models.User(name=f"user-{offset[0]}")
                session.add(models.AccessRequest(user=user, reason="please", decision_note=""))

    add(25)
    seen, pages = _follow(
        client, PREFIX + "api/access-requests?limit=7", OPERATOR, between_pages=lambda: add(2)
    )
    users = [r["user"] for r in seen]
    assert users == [f"user-{n}" for n in range(25, 0, -1)] and pages == 4
    mine = client.get(PREFIX + "api/access-requests?limit=7", headers=ALICE)
    assert mine.json() == [] and "link" not in mine.headers


def test_dataset_list_pages_by_slug_while_datasets_are_added(portal):
    client, engine = portal
    counter = iter(range(1000))

    def add(count):
        with session_factory(engine)() as session, session.begin():
            for _ in range(count):
                n = next(counter)
                # New datasets land before and after the page being read.
                row = models.Dataset(
                    slug=f"{'a' if n % 2 else 'z'}-set-{n:03d}",
                    title=f"Set {n}",
                    visibility="public",
                    storage={"kind": "pvc", "claim": "c"},
                    source="api",
                )
                row.index_for_search()
                session.add(row)

    add(30)
    present = set(_ids(engine, select(models.Dataset.slug).where(models.Dataset.enabled)))
    seen, _ = _follow(
        client, PREFIX + "api/datasets?limit=8", OPERATOR, between_pages=lambda: add(2)
    )
    slugs = [d["slug"] for d in seen]
    assert len(slugs) == len(set(slugs)) and slugs == sorted(slugs)
    assert present <= set(slugs)  # rows added behind the cursor are never seen twice


# -- streamed exports ----------------------------------------------------------------------


def _stream_rows(client, url):
    """(header, row count, first rows, characters) of a streamed CSV, without keeping it."""
    header, count, first, tail, size = None, 0, [], "", 0
    with client.stream("GET", url, headers=OPERATOR) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        for chunk in response.iter_text():
            size += len(chunk)
            lines = (tail + chunk).split("\r\n")
            tail = lines.pop()
            for line in lines:
                if header is None:
                    header = line
                    continue
                count += 1
                if len(first) < 3:
                    first.append(line)
    assert tail == ""
    return header, count, first, size


def test_audit_export_streams_in_bounded_memory(portal):
    client, engine = portal
    rows = 50_000
    detail = "path='" + "x" * 180 + "'"
    _add_audit_entries(engine, rows, detail=detail)
    tracemalloc.start()
    try:
        header, count, first, size = _stream_rows(client, PREFIX + "api/dataset-audit.csv?user=bob")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header == "id,at,user,dataset,action,allowed,reason,project,detail"
    assert count == rows
    assert first[0].startswith(f"{rows},2026-03-01T13:53:19Z,bob,ds-")
    # The export is about 12 MB of text; loading it whole would take several times that.
    assert size > 12_000_000
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for {size / 2**20:.1f} MiB"


def test_usage_records_export_has_every_session_and_job_inert(portal):
    client, engine = portal
    with session_factory(engine)() as session, session.begin():
        project = session.scalar(select(models.Project).where(models.Project.slug == "acme-vision"))
        alice = models.User(name="alice-rec")
        session.add(
            models.SessionRecord(
                user=alice,
                project_id=project.id,
                flavor="a100x1",
                image="pytorch",
                gpus=1.0,
                started_at=START,
                stopped_at=START + timedelta(hours=2),
                gpu_hours=2.0,
            )
        )
        session.add(
            models.SessionRecord(
                user=alice, project_id=project.id, flavor="cpu-small", image="python-cpu",
                gpus=0.0, started_at=START - timedelta(days=40),
            )
        )  # fmt: skip
        session.add(
            _job(
                project.id,
                "bob",
                name="=HYPERLINK(1)",
                submitted_at=START + timedelta(hours=1),
                started_at=START + timedelta(hours=1),
                ended_at=START + timedelta(hours=4),
                gpu_hours_charged=6.0,
            )
        )
    response = client.get(
        PREFIX + "api/usage-records.csv?since=2026-02-01T00:00:00Z", headers=OPERATOR
    )
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["kind"], r["user"], r["what"], r["gpus"], r["gpu_hours"]) for r in rows] == [
        ("session", "alice-rec", "a100x1", "1.0", "2.0"),
        ("job", "bob", "'=HYPERLINK(1)", "2", "6.0"),
    ]
    assert rows[0]["started_at"] == "2026-03-01T00:00:00Z"
    assert rows[1]["ended_at"] == "2026-03-01T04:00:00Z" and rows[1]["project"] == "acme-vision"
    everything = client.get(PREFIX + "api/usage-records.csv", headers=OPERATOR).text
    assert len(everything.splitlines()) == 4  # the header and three records
    refused = client.get(PREFIX + "api/usage-records.csv", headers=ALICE)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only operators can export the usage records."


def test_projects_page_by_slug_for_operators(portal):
    client, engine = portal
    counter = iter(range(1000))

    def add(count):
        with session_factory(engine)() as session, session.begin():
            for _ in range(count):
                n = next(counter)
                session.add(
                    models.Project(
                        slug=f"{'a' if n % 2 else 'zz'}-proj-{n:03d}",
                        title=f"P{n}",
                        valid_from=START.date(),
                        valid_until=START.date(),
                    )
                )

    add(23)
    present = _ids(engine, select(models.Project.slug).order_by(models.Project.slug))
    seen, _ = _follow(
        client, PREFIX + "api/projects?limit=6", OPERATOR, between_pages=lambda: add(2)
    )
    slugs = [p["slug"] for p in seen]
    assert len(slugs) == len(set(slugs)) and slugs == sorted(slugs)
    assert set(present) <= set(slugs)
    members = client.get(PREFIX + "api/projects?limit=1", headers=ALICE)
    assert [p["slug"] for p in members.json()] == ["acme-vision"]
    assert "after=acme-vision" in members.headers["link"]
    bad = client.get(PREFIX + "api/projects?after=Not%20A%20Slug", headers=ALICE)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "after"]
