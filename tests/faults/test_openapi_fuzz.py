"""A schemathesis run over the portal's OpenAPI, against the real portal (hub + proxy +
portal service, embedded default) with real hub tokens.

Every operation the OpenAPI describes is called with generated requests, valid and invalid,
as a project member (alice), as an operator (olivia), and (for the hub-only internal
endpoints) as the hub itself with the portal's service token. The checks: no answer is a 5xx,
every answer's status code is one the OpenAPI declares for the operation, its content type
and body conform to the declared schema, and a request the schema refuses is refused (4xx).

What is fuzzed is seeded first: the embedded default's projects, flavors, images and demo
datasets, a job of alice's and an access request, so generated ids sometimes hit real rows.
Bounded: ``EXAMPLES`` generated requests per operation and caller, and a deadline per
request, so the file runs in a few minutes on a busy two-core machine. No operation is
excluded.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.harness import running_portal

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw", "olivia": "olivia-pw"}
PREFIX = "/services/portal/"
EXAMPLES = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _token(portal, name: str) -> str:
    session = portal.login(name, USERS[name])
    response = session.post(
        f"{portal.url}/hub/api/users/{name}/tokens",
        json={"note": "OpenAPI fuzz", "expires_in": 3600},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """The running portal, its callers' headers and its OpenAPI document."""
    workdir = tmp_path_factory.mktemp("fuzz")
    with running_portal(workdir / "portal", USERS) as portal:
        (workdir / "portal" / "state" / "homes" / "alice").mkdir(parents=True, exist_ok=True)
        callers = {name: {"Authorization": f"token {_token(portal, name)}"} for name in USERS}
        hub_token = (workdir / "portal" / "state" / "portal_api_token").read_text().strip()
        callers["hub"] = {"Authorization": f"token {hub_token}"}
        api = portal.portal_url + "api/"
        job = requests.post(
            api + "jobs",
            json={"project": "acme-vision", "command": ["true"]},
            headers=callers["alice"],
            timeout=60,
        )
        assert job.status_code == 201, job.text
        asked = requests.post(
            api + "access-requests",
            json={"project": "uni-nlp", "reason": "fuzzing"},
            headers=callers["alice"],
            timeout=60,
        )
        assert asked.status_code == 201, asked.text
        document = requests.get(api + "openapi.json", timeout=60).json()
        yield {"portal": portal, "callers": callers, "document": document}


def _operations() -> list[tuple[str, str]]:
    """Every (method, path) of the portal's OpenAPI, read from the app itself (no server),
    so each operation is a test of its own."""
    from aitestbed.portal.app import create_app
    from sqlalchemy import create_engine

    app = create_app(engine=create_engine("sqlite://"), identity=None, prefix=PREFIX)
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def portal_schema(fuzzed):
    schema = schemathesis.openapi.from_dict(fuzzed["document"])
    schema.config.update(base_url=fuzzed["portal"].url)
    return schema


def _run(operation, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is shown
        suppress_health_check=list(HealthCheck),
    )
    def examples(case):
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)

    examples()


@pytest.mark.parametrize("caller", ["member", "operator"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_operation_answers_within_its_contract(portal_schema, fuzzed, caller, method, path):
    """A member calls the hub-only operations as the hub (its service token), so both the
    hub's use and a user's refusal (the operator's turn) are checked."""
    name = {"member": "alice", "operator": "olivia"}[caller]
    if caller == "member" and "/api/internal/" in path:
        name = "hub"
    operation = portal_schema[path][method]
    inputs = (operation.path_parameters, operation.query, operation.headers, operation.body)
    modes = [GenerationMode.POSITIVE]
    if any(len(group) for group in inputs):  # nothing to get wrong without inputs
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:
        _run(operation, mode, fuzzed["callers"][name])
