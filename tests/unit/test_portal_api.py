"""The portal API's authorization and shapes, with the hub's token check replaced by a
table of known tokens (the real hub check is covered by the integration tests)."""

from __future__ import annotations

import pytest
from aitestbed.portal.app import create_app
from aitestbed.portal.auth import TOKEN_COOKIE, Identity
from aitestbed.portal.service import prepare_database
from aitestbed.settings import load_settings
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLE_SETTINGS

PREFIX = "/services/portal/"
TOKENS = {
    "t-alice": Identity("alice", hub_admin=False, scopes=frozenset()),
    "t-bob": Identity("bob", hub_admin=False, scopes=frozenset()),
    "t-carol": Identity("carol", hub_admin=False, scopes=frozenset()),
    "t-olivia": Identity("olivia", hub_admin=False, scopes=frozenset()),  # operator by settings
    "t-admin": Identity("root-admin", hub_admin=True, scopes=frozenset()),  # operator by hub
}


class TableIdentity:
    """Resolves tokens from a fixed table, as the hub would."""

    async def resolve(self, token):
        return TOKENS.get(token)


@pytest.fixture
def client(database_url, monkeypatch):
    monkeypatch.setenv("AITESTBED_DATABASE_URL", database_url)
    engine = prepare_database(load_settings(EXAMPLE_SETTINGS))
    app = create_app(engine=engine, identity=TableIdentity(), prefix=PREFIX)
    with TestClient(app) as test_client:
        yield test_client
    engine.dispose()


def get(client, path, token=None, **kwargs):
    headers = {"Authorization": f"token {token}"} if token else {}
    return client.get(PREFIX + path, headers=headers, **kwargs)


def test_health_needs_no_token(client):
    body = get(client, "api/health").json()
    assert (body["status"], body["database"]) == ("ok", "ok")


@pytest.mark.parametrize(
    "path", ["api/me", "api/projects", "api/projects/acme-vision", "api/flavors", "api/images"]
)
def test_anonymous_and_unknown_tokens_are_refused(client, path):
    assert get(client, path).status_code == 401
    assert get(client, path, "t-nobody").status_code == 403
    assert "detail" in get(client, path, "t-nobody").json()


def test_me_lists_own_projects_with_allocations(client):
    body = get(client, "api/me", "t-bob").json()
    assert body["name"] == "bob" and body["operator"] is False
    assert [(p["slug"], p["role"]) for p in body["projects"]] == [
        ("acme-vision", "member"),
        ("uni-nlp", "member"),
    ]
    acme = body["projects"][0]["allocation"]
    assert acme == {
        "gpu_hours": 2000.0,
        "max_concurrent_gpus": 4,
        "storage_quota_gb": 10240,
        "valid_from": "2026-01-01",
        "valid_until": "2027-02-28",
        "slurm_account": "acme-vision",
    }


def test_user_without_project(client):
    assert get(client, "api/me", "t-carol").json()["projects"] == []
    assert get(client, "api/projects", "t-carol").json() == []


@pytest.mark.parametrize(
    ("token", "visible"),
    [
        ("t-alice", ["acme-vision"]),
        ("t-bob", ["acme-vision", "uni-nlp"]),
        ("t-carol", []),
        # Operators see every project, courses included (a course is a project).
        ("t-olivia", ["acme-vision", "dl-101", "uni-nlp"]),
        ("t-admin", ["acme-vision", "dl-101", "uni-nlp"]),
    ],
)
def test_project_list_and_detail_visibility(client, token, visible):
    assert [p["slug"] for p in get(client, "api/projects", token).json()] == visible
    for slug in ("acme-vision", "uni-nlp"):
        response = get(client, f"api/projects/{slug}", token)
        assert response.status_code == (200 if slug in visible else 404)


def test_detail_shows_members_and_allowed_catalog(client):
    detail = get(client, "api/projects/uni-nlp", "t-bob").json()
    assert detail["members"] == [{"user": "bob", "role": "member"}]
    assert detail["allowed_flavors"] == ["cpu-small", "a100-1g-10gb"]
    assert detail["allowed_images"] == ["python-cpu"]
    operator_view = get(client, "api/projects/acme-vision", "t-olivia").json()
    assert operator_view["role"] is None
    assert {m["user"] for m in operator_view["members"]} == {"alice", "bob"}


def test_unknown_and_foreign_projects_look_the_same(client):
    foreign = get(client, "api/projects/uni-nlp", "t-alice")
    missing = get(client, "api/projects/no-such-project", "t-alice")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["detail"] == "No project 'uni-nlp' that you can see."


@pytest.mark.parametrize(
    "slug",
    ["..%2F..%2Fetc%2Fpasswd", "ACME", "acme;rm -rf", "a" * 64, "%00", "-acme", "acme%20vision"],
)
def test_hostile_slugs_are_refused_before_any_lookup(client, slug):
    response = get(client, f"api/projects/{slug}", "t-olivia")
    assert response.status_code in (404, 422)
    assert "detail" in response.json()


def test_cookie_token_only_for_safe_methods(client):
    client.cookies.set(TOKEN_COOKIE, "t-alice")
    assert get(client, "api/me").json()["name"] == "alice"
    assert client.post(PREFIX + "api/me").status_code in (401, 405)
    client.cookies.clear()


def test_catalog(client):
    flavors = get(client, "api/flavors", "t-alice").json()
    assert [f["slug"] for f in flavors] == ["cpu-small", "a100-1g-10gb", "a100x1"]
    assert flavors[1]["mig_profile"] == "1g.10gb"
    images = get(client, "api/images", "t-alice").json()
    assert {i["slug"]: i["gpu_capable"] for i in images} == {"python-cpu": False, "pytorch": True}


def test_openapi_documents_every_api_route(client):
    spec = client.get(PREFIX + "api/openapi.json").json()
    documented = {path.removeprefix(PREFIX) for path in spec["paths"]}
    assert documented == {
        "api/health",
        "api/me",
        "api/projects",
        "api/projects/{slug}",
        "api/projects/{slug}/extend",
        "api/projects/{slug}/close",
        "api/projects/{slug}/members/{user}",
        "api/flavors",
        "api/images",
        "api/jobs",
        "api/jobs/{job_id}",
        "api/jobs/{job_id}/cancel",
        "api/jobs/{job_id}/logs",
        "api/usage",
        "api/usage.csv",
        "api/usage-records.csv",
        "api/internal/spawn-context/{user}",
        "api/internal/sessions",
        "api/internal/sessions/{record_id}/stop",
        "api/internal/users/{user}/standing",
        "api/internal/users/{user}/sso-grants",
        "api/internal/users/{user}/notices",
        "api/session-revocations",
        "api/access-requests",
        "api/access-requests/{request_id}",
        "api/access-requests/{request_id}/approve",
        "api/access-requests/{request_id}/decline",
        "api/datasets",
        "api/datasets/{slug}",
        "api/datasets/{slug}/terms",
        "api/datasets/{slug}/files",
        "api/datasets/{slug}/preview",
        "api/datasets/{slug}/grants",
        "api/datasets/{slug}/grants/{project}",
        "api/dataset-audit",
        "api/dataset-audit.csv",
        "api/dataset-linkages",
        "api/dataset-linkages/{linkage_id}",
        "api/airlock/requests",
        "api/airlock/requests/{request_id}",
        "api/airlock/requests/{request_id}/files/{file_id}/decision",
        "api/airlock/requests/{request_id}/files/{file_id}/download",
        "api/courses",
        "api/courses/join",
        "api/courses/{slug}",
        "api/courses/{slug}/roster",
        "api/courses/{slug}/members/{user}",
        "api/courses/{slug}/join-codes",
        "api/courses/{slug}/join-codes/{code_id}",
        "api/courses/{slug}/message",
        "api/courses/{slug}/collect",
        "api/courses/{slug}/class",
        "api/courses/{slug}/class.csv",
    }
