"""The airlock through its REST API (in-process, SQLite and PostgreSQL): a request copies
and checks the files, hostile paths are refused and audited, a steward decides (never on
their own request), and the requester downloads an approved file exactly once, also when
asking many times at once."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from aitestbed.portal.airlock.logic import AirlockSettings
from aitestbed.portal.app import create_app
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLE_SETTINGS
from tests.unit.test_portal_api import PREFIX, TableIdentity

COUNTS = "region,patients\nnorth,25\nsouth,3\n"
SUMMARY = "region,patients\nnorth,25\nsouth,30\n"
NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def airlock(tmp_path, database_url, monkeypatch):
    """alice and bob (acme-vision) are data stewards; olivia is an operator."""
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    outbox = tmp_path / "projects" / "acme-vision" / "outbox"
    (outbox / "tables").mkdir(parents=True)
    (outbox / "counts.csv").write_text(COUNTS)
    (outbox / "tables" / "summary.csv").write_text(SUMMARY)
    (outbox / "analysis.ipynb").write_text(NOTEBOOK)
    (outbox / "renamed.ipynb").write_text(COUNTS)  # a data file posing as a notebook
    (tmp_path / "secret.csv").write_text("secret\n")
    os.symlink(tmp_path / "secret.csv", outbox / "link.csv")
    os.symlink(tmp_path, outbox / "escape")
    settings = AirlockSettings(
        project_dir_template=str(tmp_path / "projects" / "{project}"),
        store=tmp_path / "store",
        stewards=frozenset({"alice", "bob"}),
    )
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    app = create_app(engine=engine, identity=TableIdentity(), prefix=PREFIX, airlock=settings)
    with TestClient(app) as client:
        yield client, outbox
    engine.dispose()


def call(client, method, path, token, **kwargs):
    headers = {"Authorization": f"token {token}"}
    return client.request(method, f"{PREFIX}api/airlock/{path}", headers=headers, **kwargs)


def ask(client, files, token="t-alice"):  # noqa: S107 - a name in the test table
    body = {"project": "acme-vision", "files": files, "reason": "paper figures"}
    return call(client, "POST", "requests", token, json=body)


def audit(client, action):
    entries = client.get(
        f"{PREFIX}api/dataset-audit",
        params={"action": action},
        headers={"Authorization": "token t-olivia"},
    ).json()
    return [(e["user"], e["allowed"], e["reason"].split(":")[0]) for e in reversed(entries)]


def test_a_request_keeps_a_checked_copy_of_each_file(airlock):
    client, _ = airlock
    response = ask(client, ["counts.csv", "tables/summary.csv", "analysis.ipynb"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["requester"], body["project"], body["reason"]) == (
        "alice",
        "acme-vision",
        "paper figures",
    )
    files = {f["path"]: f for f in body["files"]}
    assert files["counts.csv"]["sha256"] == hashlib.sha256(COUNTS.encode()).hexdigest()
    assert files["counts.csv"]["findings"] == [
        {
            "check": "threshold",
            "message": "Column 'patients': 1 cell(s) count fewer than 10 (e.g. 3); "
            "suppress or merge them.",
        }
    ]
    assert files["tables/summary.csv"]["findings"] == []
    assert [f["state"] for f in body["files"]] == ["pending"] * 3
    assert audit(client, "airlock-request") == [("alice", True, "ok")]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("../secret.csv", 422, "bad-path"),
        ("/etc/passwd", 422, "bad-path"),
        ("tables/../../secret.csv", 422, "bad-path"),
        (".hidden", 422, "bad-path"),
        ("link.csv", 422, "link"),
        ("escape/secret.csv", 422, "link"),
        ("renamed.ipynb", 422, "not-a-notebook"),
        ("tables", 422, "not-a-file"),
        ("missing.csv", 404, "missing"),
    ],
)
def test_hostile_paths_are_refused_whole_and_audited(airlock, path, status, code):
    client, _ = airlock
    response = ask(client, ["counts.csv", path])
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert (detail["code"], detail["field"]) == (code, "files[1]")
    assert "secret" not in response.text.replace("secret.csv", "")
    assert call(client, "GET", "requests", "t-alice").json() == []  # nothing was created
    assert audit(client, "airlock-request") == [("alice", False, code)]


def test_only_members_of_the_project_ask(airlock):
    client, _ = airlock
    response = ask(client, ["counts.csv"], token="t-carol")
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "not-a-member"
    assert audit(client, "airlock-request") == [("carol", False, "not-a-member")]


def test_stewards_decide_never_on_their_own_request_and_only_once(airlock):
    client, _ = airlock
    request = ask(client, ["counts.csv", "tables/summary.csv"]).json()
    counts, summary = (f["id"] for f in request["files"])
    path = f"requests/{request['id']}/files/{{}}/decision"
    own = call(client, "POST", path.format(summary), "t-alice", json={"decision": "approve"})
    assert own.status_code == 403
    assert own.json()["detail"] == {
        "code": "own-request",
        "message": "You asked for this export; another data steward must review it.",
    }
    nobody = call(client, "POST", path.format(summary), "t-carol", json={"decision": "approve"})
    assert (nobody.status_code, nobody.json()["detail"]["code"]) == (403, "not-a-steward")
    approved = call(client, "POST", path.format(summary), "t-bob", json={"decision": "approve"})
    assert approved.status_code == 200, approved.text
    declined = call(
        client,
        "POST",
        path.format(counts),
        "t-olivia",
        json={"decision": "decline", "note": "n<10"},
    )
    states = {f["path"]: (f["state"], f["decided_by"]) for f in declined.json()["files"]}
    assert states == {
        "counts.csv": ("declined", "olivia"),
        "tables/summary.csv": ("approved", "bob"),
    }
    again = call(client, "POST", path.format(counts), "t-bob", json={"decision": "approve"})
    assert (again.status_code, again.json()["detail"]["code"]) == (409, "decided")
    assert audit(client, "airlock-approve") == [
        ("alice", False, "own-request"),
        ("carol", False, "not-a-steward"),
        ("bob", True, "ok"),
        ("bob", False, "decided"),
    ]
    assert audit(client, "airlock-decline") == [("olivia", True, "ok")]


def test_the_requester_downloads_the_reviewed_copy_once_even_in_a_burst(airlock):
    client, outbox = airlock
    request = ask(client, ["counts.csv", "tables/summary.csv"]).json()
    counts, summary = (f["id"] for f in request["files"])
    decide = f"requests/{request['id']}/files/{{}}/decision"
    call(client, "POST", decide.format(summary), "t-bob", json={"decision": "approve"})
    call(client, "POST", decide.format(counts), "t-bob", json={"decision": "decline"})
    (outbox / "tables" / "summary.csv").write_text("changed after the review\n")
    download = f"requests/{request['id']}/files/{{}}/download"
    declined = call(client, "GET", download.format(counts), "t-alice")
    assert (declined.status_code, declined.json()["detail"]["code"]) == (403, "not-approved")
    other = call(client, "GET", download.format(summary), "t-bob")
    assert (other.status_code, other.json()["detail"]["code"]) == (403, "not-requester")

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda _: call(client, "GET", download.format(summary), "t-alice"), range(8))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [410] * 7
    (ok,) = [a for a in answers if a.status_code == 200]
    assert ok.content == SUMMARY.encode()  # the reviewed copy, not the changed file
    assert ok.headers["content-disposition"] == "attachment; filename*=UTF-8''summary.csv"
    gone = [a.json()["detail"] for a in answers if a.status_code == 410]
    assert gone[0] == {
        "code": "downloaded",
        "message": "This file has been downloaded already; ask for a new export if you need "
        "it again.",
    }
    entries = audit(client, "airlock-download")
    assert sorted(entries) == sorted(
        [("alice", False, "not-approved"), ("bob", False, "not-requester"), ("alice", True, "ok")]
        + [("alice", False, "downloaded")] * 7
    )
