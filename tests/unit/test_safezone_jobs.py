"""A job that names two pseudonymized datasets needs the operators' linkage approval."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from aitestbed.portal.db import session_factory
from aitestbed.portal.jobs.local import LocalBackend
from fastapi.testclient import TestClient

from tests.datasets_support import accept_terms, audit_entries, local_section
from tests.jobs_support import JobsClient, make_app, write_settings
from tests.unit.test_job_datasets import _refusal
from tests.unit.test_local_jobs import job_count
from tests.unit.test_portal_api import PREFIX

UNTIL = (date.today() + timedelta(days=30)).isoformat()


@pytest.fixture
def local(tmp_path, settings_doc, monkeypatch):
    """digits and wine are pseudonymized, both granted to acme-vision (alice)."""
    monkeypatch.setenv("AITESTBED_DATABASE_URL", f"sqlite:///{tmp_path / 'portal.sqlite'}")
    settings_doc["site"]["state_dir"] = str(tmp_path / "state")
    section = {d["slug"]: d for d in local_section(tmp_path / "data")}
    purposes = {"acme-vision": {"purpose": "study", "expires": UNTIL}}
    section["digits"].update({"class": "pseudonymized", "purposes": purposes})
    section["wine"].update(
        {
            "class": "pseudonymized",
            "projects": ["acme-vision"],
            "terms": {"version": "1", "text": "t"},
            "purposes": purposes,
        }
    )
    settings_doc["datasets"] = list(section.values())
    (tmp_path / "state" / "homes" / "alice").mkdir(parents=True)
    path = write_settings(tmp_path / "settings.yaml", settings_doc)
    app, _gateway, engine = make_app(
        path, LocalBackend(tmp_path / "state" / "jobs"), ["alice", "olivia"]
    )
    sessions = session_factory(engine)
    with TestClient(app) as client:
        with sessions() as session, session.begin():
            accept_terms(session, "alice", "digits")
            accept_terms(session, "alice", "wine")
        yield client, JobsClient(client, "t-alice"), sessions, engine
    engine.dispose()


def test_a_job_with_two_pseudonymized_datasets_needs_a_linkage_approval(local):
    client, alice, sessions, engine = local
    refused = _refusal(
        alice.submit(project="acme-vision", command=["true"], datasets=["digits", "wine"])
    )
    assert refused == (
        "datasets: The pseudonymized datasets 'digits' and 'wine' may not be combined without an "
        "operator's linkage approval; ask the operators, or use one of them at a time."
    )
    assert job_count(engine) == 0
    with sessions() as session:
        refusals = [e for e in audit_entries(session, "job") if not e[2]]
    assert refusals == [
        ("alice", "digits", False, "acme-vision"),
        ("alice", "wine", False, "acme-vision"),
    ]
    one = alice.submit(project="acme-vision", command=["true"], datasets=["digits"])
    assert one.status_code == 201, one.text
    approved = client.post(
        f"{PREFIX}api/dataset-linkages",
        json={"project": "acme-vision", "datasets": ["digits", "wine"], "reason": "r"},
        headers={"Authorization": "token t-olivia"},
    )
    assert approved.status_code == 201, approved.text
    both = alice.submit(project="acme-vision", command=["true"], datasets=["digits", "wine"])
    assert both.status_code == 201, both.text
