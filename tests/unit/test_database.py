"""The portal's database layer on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from aitestbed.portal import models
from aitestbed.portal.datasets.search import described_by_models
from aitestbed.portal.db import (
    alembic_config,
    make_engine,
    migrate,
    session_factory,
    transaction,
)
from aitestbed.portal.seed import sync_settings
from aitestbed.settings import parse_settings
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from tests.conftest import EXAMPLE_SETTINGS


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _settings(doc, tmp_path):
    import yaml

    return parse_settings(yaml.safe_dump(doc), tmp_path / "settings.yaml")


def test_migrations_match_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": described_by_models}
        )
        diff = compare_metadata(context, models.Base.metadata)
    assert diff == []
    assert {"projects", "memberships", "users", "flavors", "images"} <= set(
        inspect(engine).get_table_names()
    )


def test_migrate_down_and_up_again(engine):
    migrate(engine)  # a second upgrade is a no-op
    command.downgrade(alembic_config(engine), "base")
    assert "projects" not in inspect(engine).get_table_names()
    migrate(engine)
    assert "projects" in inspect(engine).get_table_names()


def test_seed_from_settings_is_idempotent(engine, settings_doc, tmp_path):
    settings = _settings(settings_doc, tmp_path)
    sessions = session_factory(engine)
    for _ in range(2):
        with transaction(sessions) as session:
            sync_settings(session, settings)
    with sessions() as session:
        projects = session.scalars(select(models.Project).order_by(models.Project.slug)).all()
        assert [(p.slug, p.kind) for p in projects] == [
            ("acme-vision", "project"),
            ("dl-101", "course"),
            ("uni-nlp", "project"),
        ]
        assert projects[1].course.flavor == "cpu-small"
        assert {(m.user.name, m.role.value, m.course_role) for m in projects[1].memberships} == {
            ("ingrid", "manager", "instructor"),
            ("sam", "member", "student"),
        }
        acme = projects[0]
        assert acme.gpu_hours_budget == 2000
        assert acme.valid_until == date(2027, 2, 28)
        assert acme.allowed_flavors is None
        assert projects[2].allowed_images == ["python-cpu"]
        roles = {(m.user.name, m.role) for m in acme.memberships}
        assert roles == {("alice", models.Role.MANAGER), ("bob", models.Role.MEMBER)}
        assert session.scalar(select(models.User).where(models.User.name == "olivia")).is_operator
        assert len(session.scalars(select(models.Membership)).all()) == 3 + 2  # and the course


def test_settings_changes_update_but_never_delete(engine, settings_doc, tmp_path):
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        sync_settings(session, _settings(settings_doc, tmp_path))
    changed = copy.deepcopy(settings_doc)
    changed["flavors"] = [f for f in changed["flavors"] if f["slug"] != "a100x1"]
    changed["projects"][0]["allocation"]["gpu_hours"] = 2500
    changed["projects"][0]["members"][1]["role"] = "manager"
    changed["projects"] = changed["projects"][:1]
    # A grant must name a project of the settings (the settings check refuses it otherwise).
    for dataset in changed["datasets"]:
        dataset["projects"] = [p for p in dataset.get("projects", []) if p != "uni-nlp"]
    changed["site"]["operators"] = []
    with transaction(sessions) as session:
        sync_settings(session, _settings(changed, tmp_path))
    with sessions() as session:
        flavor = session.scalar(select(models.Flavor).where(models.Flavor.slug == "a100x1"))
        assert flavor is not None and flavor.enabled is False
        acme = session.scalar(select(models.Project).where(models.Project.slug == "acme-vision"))
        assert acme.gpu_hours_budget == 2500
        assert {m.user.name: m.role for m in acme.memberships}["bob"] == models.Role.MANAGER
        assert session.scalar(select(models.Project).where(models.Project.slug == "uni-nlp"))
        olivia = session.scalar(select(models.User).where(models.User.name == "olivia"))
        assert olivia.is_operator is False


def test_a_user_has_one_membership_per_project(engine):
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        user = models.User(name="dave")
        project = models.Project(
            slug="p1", title="P1", valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31)
        )
        session.add_all([user, project])
        session.add(models.Membership(user=user, project=project, role=models.Role.MEMBER))
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        user = session.scalar(select(models.User).where(models.User.name == "dave"))
        project = session.scalar(select(models.Project).where(models.Project.slug == "p1"))
        session.add(models.Membership(user_id=user.id, project_id=project.id))


def test_deleting_a_project_removes_its_memberships(engine):
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        user = models.User(name="erin")
        project = models.Project(
            slug="p2", title="P2", valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31)
        )
        session.add(models.Membership(user=user, project=project))
    with transaction(sessions) as session:
        session.delete(session.scalar(select(models.Project).where(models.Project.slug == "p2")))
    with sessions() as session:
        assert session.scalars(select(models.Membership)).all() == []
        assert session.scalar(select(models.User).where(models.User.name == "erin"))


@pytest.mark.parametrize(
    ("today", "status"),
    [
        (date(2025, 12, 31), "not-yet-valid"),
        (date(2026, 1, 1), "active"),
        (date(2027, 2, 28), "active"),
        (date(2027, 3, 1), "expired"),
    ],
)
def test_project_status_over_its_allocation_window(today, status):
    project = models.Project(
        slug="w", title="W", valid_from=date(2026, 1, 1), valid_until=date(2027, 2, 28)
    )
    assert project.status(today) == status
    assert project.is_active(today) == (status == "active")


def test_example_settings_file_seeds(engine):
    from aitestbed.settings import load_settings

    sessions = session_factory(engine)
    with transaction(sessions) as session:
        sync_settings(session, load_settings(EXAMPLE_SETTINGS))
    with sessions() as session:
        assert len(session.scalars(select(models.Flavor)).all()) == 3
        assert len(session.scalars(select(models.Image)).all()) == 2
