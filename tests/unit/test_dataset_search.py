"""The catalog's word search through its index (pg_trgm on PostgreSQL, FTS5 on SQLite).

The answers must be those of the plain substring search it replaces: every word anywhere in
slug, title, description or tags. Checked against a reference computed in Python over a
seeded catalog, for words long and short, with quotes and hyphens; the index follows
changes (title changed, dataset deleted); and the database really answers from the index.
"""

from __future__ import annotations

import random

import pytest
from aitestbed.portal import models
from aitestbed.portal.datasets.search import words_match
from aitestbed.portal.db import make_engine, migrate, session_factory
from sqlalchemy import select, text

WORDS = ["vision", "speech", "medical", "satellite", "sat", "genome", "x-ray", 'say "hi"']


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _fill(engine, count=150, seed=3):
    rng = random.Random(seed)  # noqa: S311 - a seeded catalog, not a secret
    with session_factory(engine)() as session, session.begin():
        for i in range(count):
            picked = rng.sample(WORDS, 2)
            row = models.Dataset(
                slug=f"ds-{i:03d}",
                title=f"{picked[0].title()} set {i}",
                description=f"About {picked[1]} and more.",
                storage={"kind": "pvc", "claim": "c"},
            )
            row.tags = [rng.choice(["images", "text", "a1"])]
            row.index_for_search()
            session.add(row)


def _search(engine, words):
    with session_factory(engine)() as session:
        condition = words_match(session, words)
        return session.scalars(
            select(models.Dataset.slug).where(condition).order_by(models.Dataset.slug)
        ).all()


def _reference(engine, words):
    with session_factory(engine)() as session:
        rows = session.execute(select(models.Dataset.slug, models.Dataset.search_text)).all()
    return sorted(slug for slug, found in rows if all(w in found for w in words))


QUERIES = [
    [],
    ["vision"],
    ["sat"],  # also inside "satellite"
    ["ellit"],  # the middle of a word
    ["x-ray"],
    ['"hi"'],  # quotes are text, not query syntax
    ["a1"],  # a word too short for a trigram
    ["ds", "medical"],  # short and long together
    ["set", "genome", "about"],
    ["zzz"],
    ["s"],
]


@pytest.mark.parametrize("words", QUERIES, ids=lambda w: "+".join(w) or "none")
def test_search_answers_as_a_substring_match(engine, words):
    _fill(engine)
    expected = _reference(engine, words)
    assert _search(engine, words) == expected
    if words == ["zzz"]:
        assert expected == []
    elif words in (["vision"], ["sat"], ["a1"]):
        assert 0 < len(expected) < 150  # the query selects, it is not vacuous


def test_index_follows_changes(engine):
    _fill(engine, count=5)
    with session_factory(engine)() as session, session.begin():
        row = session.scalar(select(models.Dataset).where(models.Dataset.slug == "ds-001"))
        row.title = "Completely different wording"
        row.index_for_search()
        gone = session.scalar(select(models.Dataset).where(models.Dataset.slug == "ds-002"))
        session.delete(gone)
    assert _search(engine, ["completely", "wording"]) == ["ds-001"]
    assert "ds-002" not in _search(engine, ["set"])
    assert _search(engine, ["set"]) == ["ds-000", "ds-003", "ds-004"]


def test_the_database_answers_from_the_index(engine):
    _fill(engine, count=20)
    with session_factory(engine)() as session:
        query = select(models.Dataset.id).where(words_match(session, ["satellite"]))
        compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
                assert any("VIRTUAL TABLE INDEX" in str(step) for step in plan), plan
            else:
                connection.execute(text("SET enable_seqscan = off"))
                plan = connection.exec_driver_sql(f"EXPLAIN {compiled}").scalars().all()
                assert any("ix_datasets_search_text_trgm" in line for line in plan), plan
