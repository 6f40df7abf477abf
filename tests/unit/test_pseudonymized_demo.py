"""The pseudonymized demo dataset: made-up identities never reach the files, pseudonyms
are stable under one key and differ under another, and the example settings make it a
pseudonymized dataset with a purpose for its project."""

from __future__ import annotations

import csv

from aitestbed.portal.datasets.demo import (
    patients_table,
    pseudonym,
    synthetic_identities,
    write_demo_dataset,
)
from aitestbed.settings import load_settings

from tests.conftest import EXAMPLE_SETTINGS


def test_identities_are_replaced_by_stable_keyed_pseudonyms():
    first, again, other = patients_table(b"k" * 32), patients_table(b"k" * 32), patients_table()
    assert len(first.rows) == 442
    assert first.columns[:2] == ("patient", "clinic")
    pseudonyms = [row[0] for row in first.rows]
    assert len(set(pseudonyms)) == 442
    assert all(p.startswith("P-") and len(p) == 14 for p in pseudonyms)
    assert pseudonyms == [row[0] for row in again.rows]
    assert not set(pseudonyms) & {row[0] for row in other.rows}  # a random key by default
    person = synthetic_identities(1)[0]
    assert pseudonyms[0] == pseudonym(b"k" * 32, person)


def test_the_written_files_hold_no_made_up_identity(tmp_path):
    folder = tmp_path / "patients-demo"
    assert write_demo_dataset(folder, "sklearn-diabetes-pseudonymized", "Patients", "BSD-3-Clause")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "patients.csv",
        "patients.parquet",
    ]
    text = (folder / "patients.csv").read_text()
    for name, record in synthetic_identities(442):
        assert name not in text and record not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert (len(rows), rows[0]["age"], rows[0]["progression"]) == (442, "59", "151")
    assert "Pseudonymized demo." in (folder / "README.md").read_text()


def test_the_example_settings_have_it_as_pseudonymized_with_a_purpose():
    (patients,) = [d for d in load_settings(EXAMPLE_SETTINGS).datasets if d.slug == "patients-demo"]
    assert (patients.data_class, patients.projects, patients.terms.version) == (
        "pseudonymized",
        ("acme-vision",),
        "1",
    )
    assert patients.purposes["acme-vision"].purpose == "Demo: predicting disease progression"
