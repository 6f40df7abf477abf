"""Shared fixtures: settings documents, databases (SQLite and a real PostgreSQL server)."""

from __future__ import annotations

import os

import pytest
import yaml

from tests.harness import REPO, free_port
from tests.postgres import private_postgres

EXAMPLE_SETTINGS = REPO / "hub_config" / "settings.yaml"


@pytest.fixture
def settings_doc() -> dict:
    """The embedded default settings as a mutable document."""
    return yaml.safe_load(EXAMPLE_SETTINGS.read_text())


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server on a free loopback port, for the whole test session."""
    with private_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """An empty database: SQLite in a temp folder, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'portal.sqlite'}"
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"t_{os.getpid()}_{free_port()}"
    admin_url = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
