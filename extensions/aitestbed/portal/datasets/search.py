"""The catalog's word search, through an index on either database.

A word matches where it appears anywhere in a dataset's ``search_text`` (slug, title,
description and tags, lower-cased): a substring, so ``mnist`` finds ``fashion-mnist``. The
index (migration ``0006_dataset_search``) makes that cost the number of matches, not the
size of the catalog:

- PostgreSQL: a pg_trgm GIN index serves the plain ``LIKE '%word%'`` condition.
- SQLite: the FTS5 table ``datasets_search`` (trigram tokenizer) answers a phrase query
  per word of three or more characters; shorter words (which trigrams cannot index) are
  matched with ``LIKE`` among those rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, column, literal_column, select, table, true
from sqlalchemy.orm import Session

from aitestbed.portal import models

# Objects the search migration makes that the ORM models do not describe (FTS5 and its
# shadow tables, the trigram index): schema comparisons leave them out.
INDEX_OBJECTS = frozenset(
    {
        "datasets_search",
        "datasets_search_data",
        "datasets_search_idx",
        "datasets_search_docsize",
        "datasets_search_config",
        "ix_datasets_search_text_trgm",
    }
)
SHORTEST_INDEXED_WORD = 3  # a trigram

_fts = table("datasets_search", column("rowid"))


def described_by_models(_object: Any, name: str | None, *_rest: Any) -> bool:
    """Alembic ``include_object`` hook: False for the search index's own objects."""
    return name not in INDEX_OBJECTS


def _fts_phrase(word: str) -> str:
    """``word`` as an FTS5 string: anything inside double quotes, quotes doubled."""
    return '"' + word.replace('"', '""') + '"'


def _like(word: str):
    return models.Dataset.search_text.contains(word, autoescape=True)


def words_match(session: Session, words: list[str]):
    """SQL condition: datasets whose ``search_text`` contains every one of ``words``."""
    if not words:
        return true()
    if session.get_bind().dialect.name != "sqlite":
        return and_(*(_like(word) for word in words))
    indexed = [w for w in words if len(w) >= SHORTEST_INDEXED_WORD]
    conditions = [_like(w) for w in words if len(w) < SHORTEST_INDEXED_WORD]
    if indexed:
        query = " AND ".join(_fts_phrase(w) for w in indexed)
        matching = select(_fts.c.rowid).where(literal_column("datasets_search").op("MATCH")(query))
        conditions.insert(0, models.Dataset.id.in_(matching))
    return and_(*conditions)
