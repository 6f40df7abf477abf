"""Pseudonymized datasets in the catalog API: the class, grants with purpose and expiry,
and what an expired or incomplete grant does (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

from tests.unit.test_datasets_api import accept, call, client  # noqa: F401 (fixture)

PSEUDO = {
    "slug": "patients",
    "title": "Patients",
    "class": "pseudonymized",
    "terms": {"version": "1", "text": "No re-identification."},
    "storage": {"kind": "pvc", "claim": "c"},
}


def create(client, doc=PSEUDO):  # noqa: F811
    response = call(client, "POST", "datasets", "t-olivia", json=doc)
    assert response.status_code == 201, response.text
    return response.json()


def test_the_class_is_in_the_catalog_with_defaults_from_visibility(client):  # noqa: F811
    items = {d["slug"]: d for d in call(client, "GET", "datasets", "t-olivia").json()["items"]}
    assert (items["iris"]["class"], items["wine"]["class"]) == ("open", "licensed")
    assert create(client)["class"] == "pseudonymized"


def test_a_pseudonymized_dataset_must_be_granted_and_have_terms(client):  # noqa: F811
    doc = {**PSEUDO, "visibility": "public"}
    doc.pop("terms")
    response = call(client, "POST", "datasets", "t-olivia", json=doc)
    assert response.status_code == 422
    assert response.json()["errors"] == [  # the portal's one error shape (schemas.Problem)
        {"field": "visibility", "message": "a pseudonymized dataset must be granted, not public"},
        {"field": "terms", "message": "a pseudonymized dataset needs terms of use"},
    ]


def test_a_grant_of_pseudonymized_data_needs_purpose_and_expiry(client):  # noqa: F811
    create(client)
    response = call(client, "PUT", "datasets/patients/grants/acme-vision", "t-olivia")
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == ["purpose", "expires_on"]
    # Without a grant in force, alice does not even see it.
    assert call(client, "GET", "datasets/patients", "t-alice").status_code == 404


def test_grant_refusals_name_the_field_and_are_audited(client):  # noqa: F811
    create(client)
    response = call(
        client, "PUT", "datasets/patients/grants/acme-vision", "t-olivia", json={"purpose": "x"}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "field": "expires_on",
            "message": "a pseudonymized dataset is granted until a date; give the expiry.",
        }
    ]
    past = (date.today() - timedelta(days=1)).isoformat()
    response = call(
        client,
        "PUT",
        "datasets/patients/grants/acme-vision",
        "t-olivia",
        json={"purpose": "churn", "expires_on": past},
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "expires_on", "message": f"{past} is in the past."}
    ]
    audit = call(client, "GET", "dataset-audit?dataset=patients", "t-olivia").json()
    refused = [e for e in audit if e["action"] == "grant" and not e["allowed"]]
    assert len(refused) == 2


def test_only_a_grant_in_force_gives_access(client):  # noqa: F811
    create(client)
    until = date.today().isoformat()
    response = call(
        client,
        "PUT",
        "datasets/patients/grants/acme-vision",
        "t-olivia",
        json={"purpose": "churn model", "expires_on": until},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["purpose"], body["expires_on"]) == ("churn model", until)
    accept(client, "t-alice", "patients", "1")
    detail = call(client, "GET", "datasets/patients", "t-alice").json()
    assert (detail["usable"], detail["class"]) == (True, "pseudonymized")
