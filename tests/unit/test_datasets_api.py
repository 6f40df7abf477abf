"""The dataset catalog API: the authorization matrix over every endpoint, path traversal and
hostile names, terms versions, operator management and the audit log.

The portal app runs in-process against SQLite and a real PostgreSQL server; the hub's token
check is replaced by a table of known tokens (the real check is covered by the integration
tests). The datasets are real folders with real files, including links that point out.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import io
import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from aitestbed.portal.app import create_app
from aitestbed.portal.export import csv_text
from aitestbed.portal.service import prepare_database
from aitestbed.settings import parse_settings
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.conftest import EXAMPLE_SETTINGS
from tests.unit.test_portal_api import PREFIX, TableIdentity

SECRET = "TOP-SECRET-NOT-IN-ANY-DATASET"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


def make_datasets(root):
    """Three datasets on disk and a secret beside them."""
    (root / "secret").mkdir(parents=True)
    (root / "secret" / "passwords.txt").write_text(SECRET)
    iris = root / "ds" / "iris"
    (iris / "sub").mkdir(parents=True)
    (iris / "iris.csv").write_text("sepal,petal,species\n5.1,1.4,setosa\n4.9,1.4,setosa\n")
    (iris / "sub" / "inner.csv").write_text("a\n1\n")
    (iris / "notes.md").write_text("# Iris\nFisher 1936\n")
    (iris / "flower.png").write_bytes(PNG)
    (iris / "blob.bin").write_bytes(b"\x00\x01")
    pq.write_table(pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]}), iris / "table.parquet")
    for name in ("digits", "wine"):
        (root / "ds" / name).mkdir(parents=True)
        (root / "ds" / name / f"{name}.csv").write_text("v\n1\n")
    # Links inside a dataset that lead out of it: to a secret, and to another dataset.
    os.symlink(root / "secret", iris / "escape")
    os.symlink(root / "secret" / "passwords.txt", iris / "passwords.txt")
    os.symlink(root / "ds" / "digits", iris / "to-digits")
    os.symlink(root / "secret" / "no-such-file.txt", iris / "gone.txt")  # leads nowhere


def site_settings(root, database_url):
    make_datasets(root)
    doc = yaml.safe_load(EXAMPLE_SETTINGS.read_text())
    doc["site"]["state_dir"] = str(root / "state")
    doc["site"]["database_url"] = database_url
    doc["site"]["dataset_roots"] = [str(root / "ds")]
    for dataset in doc["datasets"]:
        dataset["storage"] = {"kind": "local", "path": str(root / "ds" / dataset["slug"])}
    return parse_settings(yaml.safe_dump(doc), root / "settings.yaml")


@contextlib.contextmanager
def portal_client(settings):
    engine = prepare_database(settings)
    app = create_app(
        engine=engine,
        identity=TableIdentity(),
        prefix=PREFIX,
        state_dir=settings.site.state_dir,
        dataset_roots=settings.site.dataset_roots,
    )
    with TestClient(app) as test_client:
        yield test_client
    engine.dispose()


@pytest.fixture
def client(tmp_path, database_url, monkeypatch):
    """A fresh portal per test, on SQLite and on PostgreSQL."""
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    with portal_client(site_settings(tmp_path, database_url)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory):
    """One portal (SQLite) for the tests that change nothing: refusals of bad input."""
    root = tmp_path_factory.mktemp("shared")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AITESTBED_DATABASE_URL", raising=False)
        settings = site_settings(root, f"sqlite:///{root / 'portal.sqlite'}")
        with portal_client(settings) as test_client:
            yield test_client


def call(client, method, path, token=None, **kwargs):
    headers = {"Authorization": f"token {token}"} if token else {}
    return client.request(method, PREFIX + "api/" + path, headers=headers, **kwargs)


def accept(client, token, slug="digits", version="1"):
    response = call(client, "POST", f"datasets/{slug}/terms", token, json={"version": version})
    assert response.status_code == 200, response.text
    return response.json()


# -- the authorization matrix -------------------------------------------------------------

USER_ENDPOINTS = [
    ("GET", "datasets/digits", None),
    ("GET", "datasets/digits/files", None),
    ("GET", "datasets/digits/preview?path=digits.csv", None),
    ("POST", "datasets/digits/terms", {"version": "1"}),
]
OPERATOR_ENDPOINTS = [
    ("POST", "datasets", {"slug": "new", "title": "N", "storage": {"kind": "pvc", "claim": "c"}}),
    ("PATCH", "datasets/digits", {"title": "x"}),
    ("DELETE", "datasets/digits", None),
    ("GET", "datasets/digits/grants", None),
    ("PUT", "datasets/digits/grants/uni-nlp", None),
    ("DELETE", "datasets/digits/grants/acme-vision", None),
    ("GET", "dataset-audit", None),
    ("GET", "dataset-audit.csv", None),
]
ALL_ENDPOINTS = [("GET", "datasets", None), *USER_ENDPOINTS, *OPERATOR_ENDPOINTS]


@pytest.mark.parametrize(("method", "path", "body"), ALL_ENDPOINTS)
def test_anonymous_callers_are_refused_everywhere(shared_client, method, path, body):
    assert call(shared_client, method, path, json=body).status_code == 401
    assert call(shared_client, method, path, "t-unknown", json=body).status_code == 403


# Who: carol (no project: a non-member of acme-vision, which holds digits), alice (member
# of acme-vision, terms not accepted), bob after accepting (member with accepted terms),
# olivia (operator, not a member of acme-vision).
MATRIX = {
    # endpoint: (non-member, member without terms, member with terms, operator)
    "GET datasets/digits": (404, 200, 200, 200),
    "GET datasets/digits/files": (404, 403, 200, 403),
    "GET datasets/digits/preview?path=digits.csv": (404, 403, 200, 403),
    "POST datasets/digits/terms": (404, 200, 200, 400),
}


@pytest.mark.parametrize(("method", "path", "body"), USER_ENDPOINTS)
def test_authorization_matrix_of_the_user_endpoints(client, method, path, body):
    accept(client, "t-bob")
    expected = MATRIX[f"{method} {path}"]
    if method == "POST":
        # An operator may see digits but is no member: accepting is allowed, using is not.
        expected = (404, 200, 200, 200)
    got = tuple(
        call(client, method, path, token, json=body).status_code
        for token in ("t-carol", "t-alice", "t-bob", "t-olivia")
    )
    assert got == expected


def test_refusals_say_why_with_a_code(client):
    body = call(client, "GET", "datasets/digits/files", "t-alice").json()["detail"]
    assert body["code"] == "terms-not-accepted"
    assert "accept_terms('digits')" in body["message"]
    body = call(client, "GET", "datasets/digits/files", "t-olivia").json()["detail"]
    assert body["code"] == "not-entitled"
    # The non-member gets the same answer as for a dataset that does not exist.
    unknown = call(client, "GET", "datasets/no-such-set", "t-carol")
    hidden = call(client, "GET", "datasets/digits", "t-carol")
    assert unknown.status_code == hidden.status_code == 404
    assert unknown.json()["detail"].replace("no-such-set", "X") == hidden.json()["detail"].replace(
        "digits", "X"
    )


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ENDPOINTS)
@pytest.mark.parametrize("token", ["t-carol", "t-alice", "t-bob"])
def test_operator_endpoints_refuse_everyone_else(shared_client, method, path, body, token):
    response = call(shared_client, method, path, token, json=body)
    assert response.status_code == 403
    assert "operators" in response.json()["detail"]


def test_operators_can_use_every_operator_endpoint(client):
    olivia = "t-olivia"
    new = {
        "slug": "scans",
        "title": "CT scans",
        "visibility": "granted",
        "projects": ["uni-nlp"],
        "terms": {"version": "a", "text": "Research only."},
        "storage": {"kind": "pvc", "claim": "datasets", "sub_path": "scans/v1"},
    }
    created = call(client, "POST", "datasets", olivia, json=new)
    assert created.status_code == 201, created.text
    assert created.json()["storage"] == {"kind": "pvc", "claim": "datasets", "sub_path": "scans/v1"}
    assert call(client, "POST", "datasets", olivia, json=new).status_code == 409

    def found(query):
        return [i["slug"] for i in call(client, "GET", f"datasets?{query}", olivia).json()["items"]]

    assert found("q=ct scans") == ["scans"]
    assert found("q=second") == []
    patched = call(
        client, "PATCH", "datasets/scans", olivia, json={"title": "CT scans, second edition"}
    )
    assert patched.json()["title"] == "CT scans, second edition"
    assert found("q=second") == ["scans"]  # the search follows the change
    grants = call(client, "PUT", "datasets/scans/grants/acme-vision", olivia)
    assert grants.json()["source"] == "api" and grants.json()["granted_by"] == "olivia"
    listed = call(client, "GET", "datasets/scans/grants", olivia).json()
    assert [g["project"] for g in listed] == ["acme-vision", "uni-nlp"]
    assert call(client, "DELETE", "datasets/scans/grants/acme-vision", olivia).status_code == 204
    assert call(client, "DELETE", "datasets/scans", olivia).status_code == 204
    # Withdrawn: gone for users, still there (disabled) for operators.
    assert call(client, "GET", "datasets/scans", "t-bob").status_code == 404
    assert call(client, "GET", "datasets/scans", olivia).json()["enabled"] is False
    actions = [
        e["action"] for e in call(client, "GET", "dataset-audit?dataset=scans", olivia).json()
    ]
    assert {"create", "update", "grant", "revoke", "disable"} <= set(actions)


def test_settings_owned_datasets_and_grants_are_changed_in_the_settings(client):
    for method, path in [
        ("PATCH", "datasets/digits"),
        ("DELETE", "datasets/digits"),
        ("DELETE", "datasets/digits/grants/acme-vision"),
    ]:
        response = call(client, method, path, "t-olivia", json={"title": "x"})
        assert response.status_code == 409
        assert response.json()["detail"]["code"] == "owned-by-settings"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"slug": "../etc", "title": "t", "storage": {"kind": "pvc", "claim": "c"}}, "slug"),
        ({"slug": "a;rm -rf /", "title": "t", "storage": {"kind": "pvc", "claim": "c"}}, "slug"),
        ({"slug": "ok", "title": "t", "storage": {"kind": "local", "path": "rel"}}, "storage.path"),
        (
            {
                "slug": "ok",
                "title": "t",
                "storage": {"kind": "pvc", "claim": "c", "sub_path": "../x"},
            },
            "storage.sub_path",
        ),
        (
            {
                "slug": "ok",
                "title": "t",
                "projects": ["other"],
                "storage": {"kind": "pvc", "claim": "c"},
            },
            "projects[0]",
        ),
        ({"slug": "ok", "title": "x" * 10_000, "storage": {"kind": "pvc", "claim": "c"}}, "title"),
        ({"slug": "ok", "title": "t"}, "(top level)"),
    ],
)
def test_invalid_datasets_are_refused_naming_the_field(client, doc, field):
    response = call(client, "POST", "datasets", "t-olivia", json=doc)
    assert response.status_code == 422
    body = response.json()
    assert field in [p["field"] for p in body["errors"]]
    assert body["field"] == body["errors"][0]["field"]
    assert body["detail"] == f"{body['field']}: {body['errors'][0]['message']}."
    assert all(len(p["message"]) <= 400 for p in body["errors"])
    assert call(client, "GET", "datasets?include_disabled=true", "t-olivia").json()["total"] == 3


# -- where datasets may be, and their size measured in the background -------------------


def outside_roots(path, roots):
    return (
        f"{path!r} is outside the folders datasets may come from ({roots}); move the data "
        "under one of them or add its folder to site.dataset_roots in the settings."
    )


def state_refused(path):
    return (
        f"{path!r} holds the portal's own state (databases, secrets, homes); "
        "keep datasets elsewhere."
    )


def refused_storage(message):
    return {
        "detail": f"storage.path: {message.rstrip('.')}.",
        "field": "storage.path",
        "errors": [{"field": "storage.path", "message": message.rstrip(".")}],
    }


def test_datasets_from_the_api_stay_under_the_configured_roots(client, tmp_path):
    roots = str(tmp_path / "ds")
    state = tmp_path / "state"
    (state / "homes" / "alice").mkdir(parents=True)
    (state / "secrets").mkdir()
    (tmp_path / "ds" / "to-etc").symlink_to("/etc")
    cases = [
        ("local", "/etc", outside_roots("/etc", roots)),
        ("local", "/usr", outside_roots("/usr", roots)),
        ("local", "/", state_refused("/")),
        (
            "local",
            str(tmp_path / "ds" / "to-etc"),
            outside_roots(str(tmp_path / "ds/to-etc"), roots),
        ),
        ("local", f"{roots}/../secret", outside_roots(f"{roots}/../secret", roots)),
        ("local", str(state), state_refused(str(state))),
        ("local", str(state / "homes" / "alice"), state_refused(str(state / "homes/alice"))),
        ("local", str(state / "secrets"), state_refused(str(state / "secrets"))),
        ("host_path", "/etc", outside_roots("/etc", roots)),
    ]
    for kind, path, message in cases:
        doc = {"slug": "probe", "title": "P", "storage": {"kind": kind, "path": path}}
        response = call(client, "POST", "datasets", "t-olivia", json=doc)
        assert (response.status_code, response.json()) == (422, refused_storage(message)), path
    assert call(client, "GET", "datasets/probe", "t-olivia").status_code == 404
    # A change that moves an API dataset out of the roots is refused the same way.
    doc = {"slug": "moved", "title": "M", "storage": {"kind": "local", "path": f"{roots}/wine"}}
    assert call(client, "POST", "datasets", "t-olivia", json=doc).status_code == 201
    patch = {"storage": {"kind": "local", "path": "/etc"}}
    response = call(client, "PATCH", "datasets/moved", "t-olivia", json=patch)
    assert (response.status_code, response.json()) == (
        422,
        refused_storage(outside_roots("/etc", roots)),
    )
    detail = call(client, "GET", "datasets/moved", "t-olivia").json()
    assert detail["storage"] == {"kind": "local", "path": f"{roots}/wine"}


def test_the_state_folder_is_refused_even_when_a_root_holds_it(tmp_path, monkeypatch):
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    settings = site_settings(tmp_path, f"sqlite:///{tmp_path / 'portal.sqlite'}")
    (tmp_path / "state" / "datasets" / "demo").mkdir(parents=True)
    (tmp_path / "state" / "datasets" / "demo" / "a.csv").write_text("a\n1\n")
    with portal_client(
        dataclasses.replace(
            settings, site=dataclasses.replace(settings.site, dataset_roots=(tmp_path,))
        )
    ) as client:
        for path in (tmp_path / "state", tmp_path):
            doc = {"slug": "s", "title": "S", "storage": {"kind": "local", "path": str(path)}}
            response = call(client, "POST", "datasets", "t-olivia", json=doc)
            assert (response.status_code, response.json()) == (
                422,
                refused_storage(state_refused(str(path))),
            )
        # The state folder's own datasets folder is where the embedded demo keeps its data.
        demo = tmp_path / "state" / "datasets" / "demo"
        doc = {"slug": "s", "title": "S", "storage": {"kind": "local", "path": str(demo)}}
        assert call(client, "POST", "datasets", "t-olivia", json=doc).status_code == 201


def test_a_dataset_is_measured_in_the_background_and_shown_measuring_until_then(
    client, tmp_path, monkeypatch
):
    from aitestbed.portal.datasets import storage

    release = threading.Event()
    real_folder_size = storage.folder_size

    def slow_folder_size(folder):
        assert release.wait(30), "the test never let the measurement finish"
        return real_folder_size(folder)

    monkeypatch.setattr(storage, "folder_size", slow_folder_size)
    big = tmp_path / "ds" / "big"
    (big / "sub").mkdir(parents=True)
    (big / "a.bin").write_bytes(b"x" * 1000)
    (big / "sub" / "b.bin").write_bytes(b"y" * 24)
    doc = {"slug": "big", "title": "Big", "visibility": "public",
           "storage": {"kind": "local", "path": str(big)}}  # fmt: skip
    created = call(client, "POST", "datasets", "t-olivia", json=doc)
    assert created.status_code == 201  # answered while the walk is still blocked
    sizes = ("size_state", "size_bytes", "file_count")
    assert [created.json()[k] for k in sizes] == ["measuring", None, None]
    listed = call(client, "GET", "datasets?q=big", "t-carol").json()["items"]
    assert [[i[k] for k in sizes] for i in listed] == [["measuring", None, None]]
    release.set()
    client.app.state.dataset_sizes.wait()
    listed = call(client, "GET", "datasets?q=big", "t-carol").json()["items"]
    assert [[i[k] for k in sizes] for i in listed] == [["measured", 1024, 2]]
    # Given sizes are taken as they are; nothing is measured.
    given = call(
        client, "PATCH", "datasets/big", "t-olivia", json={"size_bytes": 5, "file_count": 1}
    )
    assert [given.json()[k] for k in sizes] == ["measured", 5, 1]


def test_a_restarted_portal_measures_what_it_had_not_measured(tmp_path, monkeypatch):
    monkeypatch.delenv("AITESTBED_DATABASE_URL", raising=False)
    settings = site_settings(tmp_path, f"sqlite:///{tmp_path / 'portal.sqlite'}")
    folder = tmp_path / "ds" / "late"
    folder.mkdir()
    (folder / "a.txt").write_text("abc")
    doc = {"slug": "late", "title": "L", "storage": {"kind": "local", "path": str(folder)}}
    with portal_client(settings) as client:
        assert call(client, "POST", "datasets", "t-olivia", json=doc).status_code == 201
        client.app.state.dataset_sizes.wait()
        # As if the portal had stopped before the count was written:
        with client.app.state.sessions() as session:
            session.execute(text("UPDATE datasets SET size_bytes = NULL, file_count = NULL"))
            session.commit()
        shown = call(client, "GET", "datasets/late", "t-olivia").json()
        assert [shown[k] for k in ("size_state", "size_bytes", "file_count")] == [
            "unknown",
            None,
            None,
        ]
    with portal_client(settings) as client:
        client.app.state.dataset_sizes.wait()
        shown = call(client, "GET", "datasets/late", "t-olivia").json()
        assert [shown[k] for k in ("size_state", "size_bytes", "file_count")] == [
            "measured",
            3,
            1,
        ]


# -- terms ----------------------------------------------------------------------------------


def test_accepting_terms_is_recorded_once_with_time_and_version(client):
    first = accept(client, "t-alice")
    again = accept(client, "t-alice")
    assert first == again and first["terms_version"] == "1"
    detail = call(client, "GET", "datasets/digits", "t-alice").json()
    assert detail["terms_accepted"] is True and detail["usable"] is True
    assert detail["accepted_at"] is not None
    stale = call(client, "POST", "datasets/digits/terms", "t-alice", json={"version": "0"})
    assert stale.status_code == 409 and stale.json()["detail"]["code"] == "terms-changed"
    assert (
        call(client, "POST", "datasets/iris/terms", "t-alice", json={"version": "1"}).json()[
            "detail"
        ]["code"]
        == "no-terms"
    )


def test_a_new_terms_version_needs_a_new_acceptance(client):
    olivia = "t-olivia"
    doc = {
        "slug": "records",
        "title": "Patient records",
        "projects": ["acme-vision"],
        "terms": {"version": "1", "text": "v1"},
        "storage": {"kind": "local", "path": str(client.app.state.state_dir.parent / "ds/wine")},
    }
    assert call(client, "POST", "datasets", olivia, json=doc).status_code == 201
    accept(client, "t-alice", "records", "1")
    assert call(client, "GET", "datasets/records/files", "t-alice").status_code == 200
    changed = call(
        client, "PATCH", "datasets/records", olivia, json={"terms": {"version": "2", "text": "v2"}}
    )
    assert changed.status_code == 200
    refused = call(client, "GET", "datasets/records/files", "t-alice")
    assert refused.status_code == 403 and "version 2" in refused.json()["detail"]["message"]
    assert (
        call(client, "POST", "datasets/records/terms", "t-alice", json={"version": "1"}).status_code
        == 409
    )
    accept(client, "t-alice", "records", "2")
    assert call(client, "GET", "datasets/records/files", "t-alice").status_code == 200


# -- files: never outside a dataset's root --------------------------------------------------


def test_listing_and_previews_of_each_kind(client):
    listing = call(client, "GET", "datasets/iris/files", "t-carol").json()
    names = [e["name"] for e in listing["entries"]]
    assert names[0] == "sub"  # folders first
    assert {"iris.csv", "table.parquet", "flower.png", "notes.md"} <= set(names)
    # Links that lead out of the dataset are not listed.
    assert not {"escape", "passwords.txt", "to-digits"} & set(names)
    inner = call(client, "GET", "datasets/iris/files?path=sub", "t-carol").json()
    assert [e["path"] for e in inner["entries"]] == ["sub/inner.csv"]
    table = call(client, "GET", "datasets/iris/preview?path=iris.csv&rows=1", "t-carol").json()
    assert table["columns"] == ["sepal", "petal", "species"]
    assert table["rows"] == [["5.1", "1.4", "setosa"]] and table["total_rows"] == 2
    parquet = call(client, "GET", "datasets/iris/preview?path=table.parquet", "t-carol").json()
    assert parquet["columns"] == ["x", "y"] and parquet["rows"][2] == [3, "c"]
    assert parquet["total_rows"] == 3
    image = call(client, "GET", "datasets/iris/preview?path=flower.png", "t-carol").json()
    assert image["kind"] == "image" and base64.b64decode(image["data_base64"]) == PNG
    text = call(client, "GET", "datasets/iris/preview?path=notes.md", "t-carol").json()
    assert text["text"].startswith("# Iris")
    blob = call(client, "GET", "datasets/iris/preview?path=blob.bin", "t-carol")
    assert blob.status_code == 415


def refusal(code, message):
    return {"detail": {"code": code, "message": message}}


DOTDOT = refusal("bad-path", "The path may not contain '..'.")
ABSOLUTE = refusal("bad-path", "Give a path relative to the dataset, not an absolute one.")
OUTSIDE = refusal("outside", "The path leads outside the dataset.")
TRAVERSALS = [
    ("../secret/passwords.txt", DOTDOT),
    ("../../secret/passwords.txt", DOTDOT),
    ("sub/../../secret/passwords.txt", DOTDOT),
    ("..%2Fsecret%2Fpasswords.txt", DOTDOT),
    ("%2e%2e/secret/passwords.txt", DOTDOT),
    ("..\\secret\\passwords.txt", DOTDOT),
    ("/etc/passwd", ABSOLUTE),
    ("//etc/passwd", ABSOLUTE),
    ("C:/Windows/win.ini", ABSOLUTE),
    ("escape/passwords.txt", OUTSIDE),
    ("passwords.txt", OUTSIDE),
    ("to-digits/digits.csv", OUTSIDE),
    ("iris.csv%00.png", refusal("bad-path", "The path contains a control character.")),
    ("x" * 5000, None),  # longer than the query allows: the schema's 422
]


@pytest.mark.parametrize(("path", "answer"), TRAVERSALS)
@pytest.mark.parametrize("endpoint", ["files", "preview"])
def test_paths_outside_the_dataset_are_refused(shared_client, path, answer, endpoint):
    response = shared_client.get(
        f"{PREFIX}api/datasets/iris/{endpoint}?path={path}",
        headers={"Authorization": "token t-carol"},
    )
    if answer is None:
        assert response.status_code == 422
        assert response.json()["field"] == "path"
    else:
        assert (response.status_code, response.json()) == (400, answer)
    assert SECRET not in response.text


@pytest.mark.parametrize("endpoint", ["files", "preview"])
@pytest.mark.parametrize(
    ("present", "missing", "answer"),
    [
        ("../secret/passwords.txt", "../secret/no-such-file.txt", DOTDOT),
        ("../../ds/digits", "../../ds/no-such-set", DOTDOT),
        ("escape/passwords.txt", "escape/no-such-file.txt", OUTSIDE),
        ("passwords.txt", "gone.txt", OUTSIDE),  # gone.txt: a link to a missing outside file
    ],
)
def test_outside_paths_answer_the_same_whether_they_exist_or_not(
    shared_client, endpoint, present, missing, answer
):
    """No oracle: a path out of the dataset says nothing about what is outside."""
    answers = [
        shared_client.get(
            f"{PREFIX}api/datasets/iris/{endpoint}",
            params={"path": path},
            headers={"Authorization": "token t-carol"},
        )
        for path in (present, missing)
    ]
    assert [(a.status_code, a.json()) for a in answers] == [(400, answer)] * 2


def test_a_path_out_of_a_dataset_is_audited_as_refused(client):
    assert call(client, "GET", "datasets/iris/files?path=../secret", "t-carol").status_code == 400
    assert call(client, "GET", "datasets/iris/preview?path=passwords.txt", "t-carol").json() == (
        OUTSIDE
    )
    entries = call(client, "GET", "dataset-audit?dataset=iris&allowed=false", "t-olivia").json()
    assert [(e["user"], e["action"], e["reason"], e["detail"]) for e in entries[:2]] == [
        ("carol", "preview", "outside", "path='passwords.txt'"),
        ("carol", "files", "bad-path", "path='../secret'"),
    ]


HOSTILE_SLUGS = ["..", "%2e%2e", "..%2F..%2Fsecret", "a;rm -rf ~", "$(id)", "Digits", "x" * 10_000]


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
def test_hostile_slugs_are_refused(shared_client, slug):
    for suffix in ("", "/files", "/preview?path=iris.csv"):
        response = shared_client.get(
            f"{PREFIX}api/datasets/{slug}{suffix}", headers={"Authorization": "token t-olivia"}
        )
        assert 400 <= response.status_code < 500, (slug, suffix, response.status_code)
        assert SECRET not in response.text


def test_other_storage_kinds_are_not_read_by_the_portal(client):
    doc = {"slug": "nfs-set", "title": "N", "visibility": "public",
           "storage": {"kind": "nfs", "server": "nfs.example", "path": "/etc"}}  # fmt: skip
    assert call(client, "POST", "datasets", "t-olivia", json=doc).status_code == 201
    response = call(client, "GET", "datasets/nfs-set/preview?path=passwd", "t-carol")
    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "storage-not-readable"


# -- catalog search ---------------------------------------------------------------------


def test_search_filters_by_words_and_tags_within_what_the_caller_may_see(client):
    def slugs(token, query=""):
        body = call(client, "GET", f"datasets?{query}", token).json()
        return [i["slug"] for i in body["items"]], body

    assert slugs("t-carol")[0] == ["iris"]
    assert slugs("t-bob")[0] == ["digits", "iris", "wine"]
    assert slugs("t-bob", "q=FISHER")[0] == ["iris"]  # description words, any case
    assert slugs("t-bob", "q=iris flowers")[0] == ["iris"]
    assert slugs("t-bob", "q=ital")[0] == ["wine"]
    assert slugs("t-carol", "q=ital")[0] == []  # wine exists, but not for carol
    assert slugs("t-bob", "tag=images")[0] == ["digits"]
    _, page = slugs("t-bob", "tag=classification&limit=2&offset=1")
    assert page["total"] == 3 and [i["slug"] for i in page["items"]] == ["iris", "wine"]
    assert {"tag": "classification", "count": 3} in page["tags"]
    _, beyond = slugs("t-bob", "offset=10")
    assert beyond["total"] == 3 and beyond["items"] == []
    for hostile in ["%25", "_", "' OR 1=1 --", "%5C%25"]:
        assert slugs("t-bob", f"q={hostile}")[0] == []
    assert call(client, "GET", "datasets?tag=Bad Tag", "t-bob").status_code == 422
    assert call(client, "GET", "datasets?q=" + "x" * 300, "t-bob").status_code == 422
    assert call(client, "GET", "datasets?limit=100000", "t-bob").status_code == 422


# -- audit ----------------------------------------------------------------------------------


def test_every_access_decision_is_audited_and_exported(client):
    call(client, "GET", "datasets?q=iris", "t-bob")
    call(client, "GET", "datasets/digits", "t-bob")
    call(client, "GET", "datasets/digits/files", "t-bob")  # refused: terms
    accept(client, "t-bob")
    call(client, "GET", "datasets/digits/preview?path=digits.csv", "t-bob")
    call(client, "GET", "datasets/wine", "t-alice")  # invisible to alice
    entries = call(client, "GET", "dataset-audit?user=bob", "t-olivia").json()
    seen = [(e["action"], e["dataset"], e["allowed"]) for e in reversed(entries)]
    assert seen == [
        ("list", None, True),
        ("view", "digits", True),
        ("files", "digits", False),
        ("accept-terms", "digits", True),
        ("preview", "digits", True),
    ]
    assert "results=1" in entries[-1]["detail"]
    assert entries[2]["reason"].startswith("terms-not-accepted")
    refused = call(client, "GET", "dataset-audit?user=alice&allowed=false", "t-olivia").json()
    assert [(e["action"], e["dataset"]) for e in refused] == [("view", "wine")]
    export = call(client, "GET", "dataset-audit.csv?user=bob", "t-olivia")
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["action"] for r in reversed(rows)] == [a for a, _, _ in seen]
    assert rows[0]["user"] == "bob" and rows[0]["allowed"] == "True"


def test_csv_export_neutralises_spreadsheet_formulas():
    text = csv_text([{"a": "=HYPERLINK(1)", "b": "", "c": "-1", "d": 3}], ["a", "b", "c", "d"])
    assert text.splitlines()[1] == "'=HYPERLINK(1),,'-1,3"
