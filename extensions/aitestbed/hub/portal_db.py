"""The hub's short path into the portal database (same URL as the portal service).

The hub asks two things of the portal's data, both at moments where a network hop to the
portal service would only add a way to fail: "does this user have an active project?"
before a server starts, and "apply what single sign-on granted" right after a login. The
rules themselves live in :mod:`aitestbed.portal.directory`; this module only runs them in
a worker thread with a transaction, so the hub's event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from functools import cache
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

T = TypeVar("T")


@cache
def _engine(url: str) -> Engine:
    from aitestbed.portal.db import make_engine

    return make_engine(url)


def run_in_transaction(url: str, work: Callable[[Session], T]) -> T:
    from aitestbed.portal.db import session_factory, transaction

    with transaction(session_factory(_engine(url))) as session:
        return work(session)


async def in_portal_db(url: str, work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in a transaction on the portal database, off the event loop."""
    return await asyncio.to_thread(run_in_transaction, url, work)


def user_has_active_project(url: str, name: str, today: date | None = None) -> bool:
    from aitestbed.portal.directory import has_active_project

    return run_in_transaction(url, lambda s: has_active_project(s, name, today or date.today()))
