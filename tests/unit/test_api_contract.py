"""The portal API's contract at its edges: numbers too large for the database, NaN and
infinities, strict numbers, deep nesting, times with their UTC offset, one error shape that
the OpenAPI declares, and an unreachable hub.

The portal runs in-process with the local job backend, on SQLite and on PostgreSQL; the
hub's token check is a table of tokens, except in the hub-down test, which uses JupyterHub's
real HubOAuth against a port where no hub listens.
"""

from __future__ import annotations

import contextlib
import json
import socket
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from aitestbed.portal.app import create_app
from aitestbed.portal.auth import HubIdentity
from aitestbed.portal.jobs.local import LocalBackend
from aitestbed.portal.jobs.spec import JobSpecError, validate
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient
from jupyterhub.services.auth import HubOAuth

from tests.conftest import EXAMPLE_SETTINGS
from tests.jobs_support import PREFIX, make_app, write_settings

BIG = 2**63  # one more than a database integer holds
HUGE = 10**30
OPERATOR = {"Authorization": "token t-olivia"}
MEMBER = {"Authorization": "token t-alice"}


@contextlib.contextmanager
def running_portal(root, settings_doc):
    settings_doc["site"]["state_dir"] = str(root / "state")
    settings_doc["jobs"]["partitions"].append(
        {"name": "gpu", "gpus_per_node": 4, "max_nodes": 2, "max_time_minutes": 600}
    )
    path = write_settings(root / "settings.yaml", settings_doc)
    (root / "state" / "homes" / "alice").mkdir(parents=True)
    backend = LocalBackend(root / "state" / "jobs")
    app, _gateway, engine = make_app(path, backend, ["alice", "olivia"])
    with TestClient(app) as client:
        yield client
    for job_dir in (root / "state" / "jobs").glob("*"):
        backend.cancel(job_dir.name, "")
    engine.dispose()


@pytest.fixture
def portal(tmp_path, settings_doc, monkeypatch, database_url):
    """A fresh portal, on SQLite and on PostgreSQL."""
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    with running_portal(tmp_path, settings_doc) as client:
        yield client


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One portal (SQLite) for the tests that only send what it refuses."""
    root = tmp_path_factory.mktemp("contract")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AITESTBED_DATABASE_URL", f"sqlite:///{root / 'portal.sqlite'}")
        with running_portal(root, yaml.safe_load(EXAMPLE_SETTINGS.read_text())) as client:
            yield client


def problem(field, message):
    """The 422 the portal answers for a request its schema refuses."""
    return {
        "detail": f"{field}: {message}.",
        "field": field,
        "errors": [{"field": field, "message": message}],
    }


def too_big(field):
    return problem(field, f"Input should be less than or equal to {BIG - 1}")


# -- item: numbers the database cannot hold -------------------------------------------------

ROW_IDS = [
    ("GET", "api/jobs/{n}", "job_id"),
    ("POST", "api/jobs/{n}/cancel", "job_id"),
    ("GET", "api/jobs/{n}/logs", "job_id"),
    ("GET", "api/access-requests/{n}", "request_id"),
    ("POST", "api/access-requests/{n}/approve", "request_id"),
    ("POST", "api/access-requests/{n}/decline", "request_id"),
    ("GET", "api/dataset-audit?offset={n}", "offset"),
    ("GET", "api/dataset-audit.csv?offset={n}", None),  # the CSV has no paging
]


@pytest.mark.parametrize(("method", "template", "field"), ROW_IDS)
def test_ids_and_offsets_beyond_a_database_integer_are_a_422(shared, method, template, field):
    for number in (BIG, HUGE):
        response = shared.request(
            method, PREFIX + template.format(n=number), headers=OPERATOR, json={}
        )
        if field is None:
            assert response.status_code == 200
            continue
        assert (response.status_code, response.json()) == (422, too_big(field))
    if field is not None and "{n}" in template.split("?")[0]:
        largest = shared.request(
            method, PREFIX + template.format(n=BIG - 1), headers=OPERATOR, json={}
        )
        assert largest.status_code == 404, largest.text


@pytest.mark.parametrize(
    ("path", "field", "limit"),
    [
        ("api/datasets?offset={n}", "offset", 1_000_000),
        ("api/datasets?limit={n}", "limit", 500),
        ("api/jobs/1/logs?tail_bytes={n}", "tail_bytes", 1024 * 1024),
        ("api/datasets/iris/preview?path=iris.csv&rows={n}", "rows", 200),
    ],
)
def test_sizes_beyond_their_bound_are_a_422(shared, path, field, limit):
    response = shared.get(PREFIX + path.format(n=HUGE), headers=MEMBER)
    message = f"Input should be less than or equal to {limit}"
    assert (response.status_code, response.json()) == (422, problem(field, message))


def test_a_dataset_size_beyond_a_database_integer_is_refused_naming_it(shared):
    doc = {"slug": "huge", "title": "H", "storage": {"kind": "pvc", "claim": "c"}}
    response = shared.post(
        PREFIX + "api/datasets", headers=OPERATOR, json={**doc, "size_bytes": BIG}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "size_bytes"
    assert (
        response.json()["detail"] == f"size_bytes: {BIG} is greater than the maximum of {BIG - 1}."
    )
    assert shared.get(PREFIX + "api/datasets/huge", headers=OPERATOR).status_code == 404


# -- NaN, infinities, strict numbers ---------------------------------------------------------

NOT_AN_INTEGER = "Input should be a valid integer"
NOT_FINITE = "must be a finite number (NaN and Infinity are not JSON)"


@pytest.mark.parametrize("field", ["nodes", "gpus_per_node", "cpus_per_task", "memory_mb",
                                   "time_limit_minutes"])  # fmt: skip
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "true", "1.5"])
def test_job_numbers_must_be_plain_integers(shared, field, value):
    raw = f'{{"project": "acme-vision", "command": ["true"], "{field}": {value}}}'
    response = shared.post(
        PREFIX + "api/jobs", headers={**MEMBER, "Content-Type": "application/json"}, content=raw
    )
    message = NOT_AN_INTEGER if value in ("true", "1.5") else NOT_FINITE
    assert (response.status_code, response.json()) == (422, problem(field, message))
    assert shared.get(PREFIX + "api/jobs", headers=MEMBER).json() == []


def test_nan_anywhere_in_a_body_is_refused_naming_where(shared):
    """Python's JSON parser takes NaN, Infinity and 1e999; the portal does not."""
    cases = [
        ("api/access-requests", '{"reason": NaN, "project": Infinity}', "reason"),
        (
            "api/jobs",
            '{"project": "acme-vision", "kind": "notebook", "notebook": "a.ipynb", '
            '"parameters": {"grid": [1, [2, -Infinity]]}}',
            "parameters.grid[1][1]",
        ),
        (
            "api/projects",
            '{"slug": "nan-co", "title": "N", "allocation": {"gpu_hours": 1e999, '
            '"max_concurrent_gpus": 1, "storage_quota_gb": 1, "valid_from": "2026-01-01", '
            '"valid_until": "2027-01-01"}}',
            "allocation.gpu_hours",
        ),
        ("api/datasets", "[NaN]", "[0]"),
    ]
    for path, raw, field in cases:
        response = shared.post(
            PREFIX + path, headers={**OPERATOR, "Content-Type": "application/json"}, content=raw
        )
        assert (response.status_code, response.json()) == (422, problem(field, NOT_FINITE)), path
    assert shared.get(PREFIX + "api/projects/nan-co", headers=OPERATOR).status_code == 404
    assert shared.get(PREFIX + "api/access-requests", headers=OPERATOR).json() == []


def test_time_filters_are_dates_compared_in_utc(shared):
    for text in ("-1390", "1700000000", "yesterday"):
        response = shared.get(PREFIX + f"api/dataset-audit?since={text}", headers=OPERATOR)
        assert (response.status_code, response.json()) == (
            422,
            problem("since", "give a date and time like 2026-11-01T00:00:00Z"),
        )
    shared.get(PREFIX + "api/datasets?q=probe-entry", headers=MEMBER)
    entry = shared.get(PREFIX + "api/dataset-audit?limit=1", headers=OPERATOR).json()[0]
    at = datetime.fromisoformat(entry["at"])
    five_east = timezone(timedelta(hours=5))

    def found(**bounds):
        query = "&".join(
            f"{k}={(at + d).astimezone(five_east).isoformat().replace('+', '%2B')}"
            for k, d in bounds.items()
        )
        listed = shared.get(PREFIX + f"api/dataset-audit?{query}", headers=OPERATOR).json()
        return entry["id"] in [e["id"] for e in listed]

    assert found(since=timedelta(seconds=-1), until=timedelta(seconds=1))
    assert not found(since=timedelta(seconds=1))
    assert not found(until=timedelta(seconds=-1))


def test_a_month_no_date_can_hold_is_a_422(shared):
    for month in ("0000-01", "9999-12"):
        response = shared.get(PREFIX + f"api/usage-records.csv?month={month}", headers=OPERATOR)
        assert (response.status_code, response.json()) == (
            422,
            problem("month", "give a month between 0001-01 and 9999-11"),
        )


# -- notebook parameters nested deeply -------------------------------------------------------


def nested(depth):
    text = "1"
    for _ in range(depth):
        text = f"[{text}]"
    return text


@pytest.mark.parametrize("depth", [33, 900])
def test_deeply_nested_notebook_parameters_are_a_422_naming_the_field(shared, depth):
    raw = (
        '{"project": "acme-vision", "kind": "notebook", "notebook": "a.ipynb", '
        f'"parameters": {{"lr": 0.1, "grid": {nested(depth)}}}}}'
    )
    response = shared.post(
        PREFIX + "api/jobs", headers={**MEMBER, "Content-Type": "application/json"}, content=raw
    )
    assert (response.status_code, response.json()) == (
        422,
        problem("parameters", "grid nests deeper than 32 levels of lists and mappings"),
    )


def spec_settings(tmp_path, settings_doc):
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    settings_doc["jobs"]["partitions"].append({"name": "gpu", "gpus_per_node": 4, "max_nodes": 2})
    return load_settings(write_settings(tmp_path / "settings.yaml", settings_doc)).jobs


def test_the_spec_refuses_deep_and_non_finite_parameters_on_its_own(tmp_path, settings_doc):
    jobs = spec_settings(tmp_path, settings_doc)
    base = {"project": "acme-vision", "kind": "notebook", "notebook": "a.ipynb"}
    deep = json.loads(nested(33))
    cases = [
        ({"grid": deep}, "parameters.grid", "nests deeper than 32 levels of lists and mappings."),
        (
            {"lr": float("nan")},
            "parameters.lr",
            "must hold finite numbers only (not NaN or infinity).",
        ),
        (
            {"w": [1.0, {"x": float("inf")}]},
            "parameters.w",
            "must hold finite numbers only (not NaN or infinity).",
        ),
    ]
    for parameters, field, reason in cases:
        with pytest.raises(JobSpecError) as refused:
            validate({**base, "parameters": parameters}, jobs=jobs, unix_user="alice")
        assert (refused.value.field, refused.value.reason) == (field, reason)
    ok = validate({**base, "parameters": {"grid": json.loads(nested(32))}}, jobs=jobs,
                  unix_user="alice")  # fmt: skip
    assert ok.parameters == {"grid": json.loads(nested(32))}


# -- negative GPUs: refused by the API schema and by the spec, each on its own ---------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("gpus_per_node", -4, "Input should be greater than or equal to 0"),
        ("gpus_per_node", 65, "Input should be less than or equal to 64"),
        ("nodes", 0, "Input should be greater than or equal to 1"),
        ("nodes", -1, "Input should be greater than or equal to 1"),
        ("cpus_per_task", 0, "Input should be greater than or equal to 1"),
        ("memory_mb", 0, "Input should be greater than or equal to 1"),
        ("time_limit_minutes", -60, "Input should be greater than or equal to 1"),
    ],
)
def test_the_api_schema_bounds_every_count(shared, field, value, message):
    body = {"project": "acme-vision", "partition": "gpu", "command": ["true"], field: value}
    response = shared.post(PREFIX + "api/jobs", headers=MEMBER, json=body)
    assert (response.status_code, response.json()) == (422, problem(field, message))
    assert shared.get(PREFIX + "api/jobs", headers=MEMBER).json() == []


def test_an_idempotency_key_longer_than_the_database_keeps_is_a_422(shared):
    body = {"project": "acme-vision", "command": ["true"]}
    too_long = "k" * 129
    message = "String should have at most 128 characters"
    by_header = shared.post(
        PREFIX + "api/jobs", headers={**MEMBER, "Idempotency-Key": too_long}, json=body
    )
    assert (by_header.status_code, by_header.json()) == (422, problem("Idempotency-Key", message))
    in_body = shared.post(
        PREFIX + "api/jobs", headers=MEMBER, json={**body, "idempotency_key": too_long}
    )
    assert (in_body.status_code, in_body.json()) == (422, problem("idempotency_key", message))
    assert shared.get(PREFIX + "api/jobs", headers=MEMBER).json() == []


def test_the_openapi_declares_the_bounds_and_the_error_shape(shared):
    spec = shared.get(PREFIX + "api/openapi.json").json()
    submit = spec["components"]["schemas"]["JobSubmit"]["properties"]
    assert (submit["gpus_per_node"]["minimum"], submit["gpus_per_node"]["maximum"]) == (0, 64)
    assert (submit["nodes"]["minimum"], submit["nodes"]["maximum"]) == (1, 10_000)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            declared = operation["responses"].get("422", {})
            schema = declared.get("content", {}).get("application/json", {}).get("schema")
            assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)


@pytest.mark.parametrize(
    ("gpus", "reason"),
    [
        (-4, "must be between 0 and 4 (GPUs per node in partition gpu); got -4."),
        (5, "must be between 0 and 4 (GPUs per node in partition gpu); got 5."),
        (True, "must be a whole number."),
        (2.0, "must be a whole number."),
    ],
)
def test_the_spec_bounds_gpus_on_its_own(tmp_path, settings_doc, gpus, reason):
    jobs = spec_settings(tmp_path, settings_doc)
    request = {"project": "acme-vision", "partition": "gpu", "command": ["true"]}
    with pytest.raises(JobSpecError) as refused:
        validate({**request, "gpus_per_node": gpus}, jobs=jobs, unix_user="alice")
    assert (refused.value.field, refused.value.reason) == ("gpus_per_node", reason)


# -- every time in an answer has its UTC offset ----------------------------------------------


def assert_utc(text):
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text
    assert text.endswith(("Z", "+00:00")), text


def test_every_time_in_the_answers_carries_its_utc_offset(portal):
    job = portal.post(
        PREFIX + "api/jobs", headers=MEMBER, json={"project": "acme-vision", "command": ["true"]}
    ).json()
    request = portal.post(
        PREFIX + "api/access-requests", headers=MEMBER, json={"reason": "a course"}
    ).json()
    portal.post(PREFIX + f"api/access-requests/{request['id']}/decline", headers=OPERATOR, json={})
    portal.put(PREFIX + "api/datasets/wine/grants/uni-nlp", headers=OPERATOR)
    portal.post(PREFIX + "api/datasets/digits/terms", headers=MEMBER, json={"version": "1"})
    # Read back from the database (SQLite hands back naive datetimes).
    times = [
        portal.get(PREFIX + f"api/jobs/{job['id']}", headers=MEMBER).json()["submitted_at"],
        *(
            portal.get(PREFIX + f"api/access-requests/{request['id']}", headers=MEMBER).json()[k]
            for k in ("created_at", "decided_at")
        ),
        *(
            g["granted_at"]
            for g in portal.get(PREFIX + "api/datasets/wine/grants", headers=OPERATOR).json()
        ),
        portal.get(PREFIX + "api/datasets/digits", headers=MEMBER).json()["accepted_at"],
        *(e["at"] for e in portal.get(PREFIX + "api/dataset-audit", headers=OPERATOR).json()),
    ]
    assert len(times) >= 6
    for text in times:
        assert_utc(text)


# -- the hub is down --------------------------------------------------------------------------


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_hub_that_does_not_answer_is_a_503_with_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", f"sqlite:///{tmp_path / 'portal.sqlite'}")
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    hub_auth = HubOAuth(
        api_url=f"http://127.0.0.1:{free_port()}/hub/api",
        api_token="t" * 32,
        cache_max_age=0,
        oauth_client_id="service-portal",
    )
    app = create_app(engine=engine, identity=HubIdentity(hub_auth), prefix=PREFIX)
    expected = {
        "detail": "The hub is not answering, so the portal cannot check who you are; try "
        "again in a minute, and tell the operators if this lasts."
    }
    with TestClient(app) as client:
        for path in ("api/me", "api/projects", "api/datasets"):
            response = client.get(PREFIX + path, headers={"Authorization": "token anything"})
            assert (response.status_code, response.json()) == (503, expected), path
            assert response.headers["Retry-After"] == "30"
        client.cookies.set("aitestbed-portal-token", "anything")
        page = client.get(PREFIX)
        assert (page.status_code, page.json()) == (503, expected)
        assert client.get(PREFIX + "api/health").json()["status"] == "ok"
    engine.dispose()


def test_the_hub_reads_the_portals_error_shape():
    from aitestbed.hub.portal_client import _detail

    refused = json.dumps(problem("flavor", "String should match pattern")).encode()
    assert _detail(refused) == ("Invalid session options: flavor.", "invalid")
    coded = json.dumps({"detail": {"code": "over-cap", "message": "The GPU cap is reached."}})
    assert _detail(coded.encode()) == ("The GPU cap is reached.", "over-cap")
    assert _detail(b'{"detail": "Only the hub may call this endpoint."}') == (
        "Only the hub may call this endpoint.",
        "",
    )
