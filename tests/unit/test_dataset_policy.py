"""The pure dataset policy, and the settings sync of the catalog and its grants."""

from __future__ import annotations

import pytest
import yaml
from aitestbed.policy.datasets import (
    DatasetRule,
    Viewer,
    can_see,
    session_datasets,
    use_decision,
)
from aitestbed.portal import models
from aitestbed.portal.db import make_engine, migrate, session_factory, transaction
from aitestbed.portal.seed import sync_settings
from aitestbed.settings import SettingsError, parse_settings
from sqlalchemy import select

PUBLIC = DatasetRule("iris", "public")
GRANTED = DatasetRule("wine", "granted", frozenset({"uni-nlp"}))
TERMS = DatasetRule("digits", "granted", frozenset({"acme-vision"}), terms_version="2")
WITHDRAWN = DatasetRule("old", "public", enabled=False)


def viewer(projects=(), operator=False, accepted=None):
    return Viewer("u", frozenset(projects), operator, accepted or {})


def test_who_sees_what():
    assert can_see(PUBLIC, viewer())
    assert not can_see(GRANTED, viewer(["acme-vision"]))
    assert can_see(GRANTED, viewer(["uni-nlp"]))
    assert can_see(GRANTED, viewer(operator=True))
    assert not can_see(WITHDRAWN, viewer(["x"]))
    assert can_see(WITHDRAWN, viewer(operator=True))


@pytest.mark.parametrize(
    ("rule", "who", "project", "code"),
    [
        (PUBLIC, viewer(), None, "ok"),
        (GRANTED, viewer(["acme-vision"]), None, "unknown"),
        (GRANTED, viewer(["uni-nlp", "acme-vision"]), "acme-vision", "not-entitled"),
        (GRANTED, viewer(["uni-nlp", "acme-vision"]), "uni-nlp", "ok"),
        (GRANTED, viewer(operator=True), None, "not-entitled"),
        (TERMS, viewer(["acme-vision"]), None, "terms-not-accepted"),
        (TERMS, viewer(["acme-vision"], accepted={"digits": frozenset({"1"})}), None,
         "terms-not-accepted"),
        (TERMS, viewer(["acme-vision"], accepted={"digits": frozenset({"1", "2"})}), None, "ok"),
        (WITHDRAWN, viewer(operator=True), None, "disabled"),
        (None, viewer(operator=True), None, "unknown"),
    ],
)  # fmt: skip
def test_use_decisions(rule, who, project, code):
    decision = use_decision(rule, who, project, slug="missing")
    assert decision.code == code
    assert decision.allowed is (code == "ok")
    assert bool(decision.reason) is (code != "ok")


def test_a_project_the_user_is_not_in_grants_nothing():
    # Asking for a project the viewer is not a member of never widens what they may use.
    assert use_decision(GRANTED, viewer(["acme-vision"], operator=True), "uni-nlp").code == (
        "not-entitled"
    )


def test_session_datasets_mounts_exactly_the_usable_ones_of_the_project():
    rules = [TERMS, GRANTED, PUBLIC, WITHDRAWN]
    bob = viewer(["acme-vision", "uni-nlp"])
    assert session_datasets(rules, bob, "uni-nlp") == (["iris", "wine"], [])
    mounted, refused = session_datasets(rules, bob, "acme-vision")
    assert mounted == ["iris"]
    assert [(slug, d.code) for slug, d in refused] == [("digits", "terms-not-accepted")]
    accepted = viewer(["acme-vision"], accepted={"digits": frozenset({"2"})})
    assert session_datasets(rules, accepted, "acme-vision") == (["digits", "iris"], [])


def _parse(doc, tmp_path):
    return parse_settings(yaml.safe_dump(doc), tmp_path / "settings.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(projects=["nope"]), "no project 'nope' is defined"),
        (lambda d: d.update(visibility="public"), "a public dataset is open to every user"),
        (lambda d: d.update(storage={"kind": "nfs", "server": "s", "path": "rel"}), "absolute"),
        (lambda d: d.update(storage={"kind": "pvc", "claim": "c", "sub_path": "a/../b"}),
         "datasets[2].storage.sub_path"),
        (lambda d: d.update(storage={"kind": "pvc", "claim": "c", "path": "/x"}), "not used"),
        (lambda d: d.update(slug="iris"), "iris"),
        (lambda d: d.update(terms={"version": "1"}), "text"),
    ],
)  # fmt: skip
def test_invalid_dataset_settings_name_the_key(settings_doc, tmp_path, change, message):
    change(settings_doc["datasets"][2])
    with pytest.raises(SettingsError) as error:
        _parse(settings_doc, tmp_path)
    assert message in str(error.value)
    assert "datasets[2]" in str(error.value)


def test_local_paths_resolve_state_dir_and_the_settings_folder(settings_doc, tmp_path):
    settings_doc["site"]["state_dir"] = "state"
    settings_doc["datasets"][1]["storage"] = {"kind": "local", "path": "data/wine"}
    settings = _parse(settings_doc, tmp_path)
    assert settings.datasets[0].storage.path == str(tmp_path / "state" / "datasets" / "iris")
    assert settings.datasets[1].storage.path == str(tmp_path / "data" / "wine")


def test_sync_keeps_api_grants_and_disables_removed_datasets(settings_doc, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.sqlite'}")
    migrate(engine)
    sessions = session_factory(engine)
    folder = tmp_path / "wine"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "sub" / "b.csv").write_text("y\n")
    settings_doc["datasets"][1]["storage"] = {"kind": "local", "path": str(folder)}
    with transaction(sessions) as session:
        sync_settings(session, _parse(settings_doc, tmp_path))
    with transaction(sessions) as session:
        wine = session.scalar(select(models.Dataset).where(models.Dataset.slug == "wine"))
        assert (wine.size_bytes, wine.file_count) == (6, 2)
        acme = session.scalar(select(models.Project).where(models.Project.slug == "acme-vision"))
        wine.grants.append(models.DatasetGrant(project_id=acme.id, source="api"))
    changed = yaml.safe_load(yaml.safe_dump(settings_doc))
    changed["datasets"] = [d for d in changed["datasets"] if d["slug"] != "digits"]
    changed["datasets"][1]["projects"] = []  # wine: the settings grant to uni-nlp goes
    changed["datasets"][1]["terms"] = {"version": "7", "text": "New terms."}
    for _ in range(2):  # idempotent
        with transaction(sessions) as session:
            sync_settings(session, _parse(changed, tmp_path))
    with sessions() as session:
        rows = {d.slug: d for d in session.scalars(select(models.Dataset))}
        assert rows["digits"].enabled is False
        wine = rows["wine"]
        assert sorted((g.project.slug, g.source) for g in wine.grants) == [("acme-vision", "api")]
        assert (wine.terms_version, wine.terms_text) == ("7", "New terms.")
    engine.dispose()
