"""dataset catalog word search through an index: pg_trgm GIN (PostgreSQL), FTS5 (SQLite)

The catalog search finds every word anywhere in ``datasets.search_text`` (a substring
match). Without an index that reads every row; with these it reads the matches only:

- PostgreSQL: a GIN index of trigrams (the pg_trgm extension, shipped with PostgreSQL and
  trusted: a database owner may create it), which serves the same ``LIKE '%word%'`` query.
  Where the extension is not available the index is left out (with a warning) and search
  still works, reading every row.
- SQLite: an FTS5 table with the trigram tokenizer over ``search_text`` (external content:
  it stores only the index), kept in step by triggers on ``datasets``. A later migration
  that recreates ``datasets`` (batch mode) must recreate these triggers.

Revision ID: 0006_dataset_search
Revises: 0005
Create Date: 2026-11-30
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0006_dataset_search"
down_revision = "0005"
branch_labels = None
depends_on = None

SQLITE_UPGRADE = [
    "CREATE VIRTUAL TABLE datasets_search USING fts5("
    "search_text, content='datasets', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER datasets_search_insert AFTER INSERT ON datasets BEGIN "
    "INSERT INTO datasets_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER datasets_search_delete AFTER DELETE ON datasets BEGIN "
    "INSERT INTO datasets_search(datasets_search, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER datasets_search_update AFTER UPDATE OF search_text ON datasets BEGIN "
    "INSERT INTO datasets_search(datasets_search, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO datasets_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO datasets_search(datasets_search) VALUES ('rebuild')",
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS datasets_search_update",
    "DROP TRIGGER IF EXISTS datasets_search_delete",
    "DROP TRIGGER IF EXISTS datasets_search_insert",
    "DROP TABLE IF EXISTS datasets_search",
]
PG_INDEX = "ix_datasets_search_text_trgm"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_UPGRADE:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        available = bind.scalar(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        )
        if not available:
            logging.getLogger(__name__).warning(
                "PostgreSQL has no pg_trgm extension: the dataset search reads every row. "
                "Install the server's contrib package and run the migration again for an index."
            )
            return
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON datasets "
            "USING gin (search_text gin_trgm_ops)"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_DOWNGRADE:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
