"""FastAPI dependencies shared by the portal's routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from aitestbed.portal.auth import Identity, identify
from aitestbed.portal.schemas import MAX_DB_INT


async def request_session(request: Request) -> AsyncIterator[Session]:
    """A database session for one request, from the app's session factory.

    Async on purpose: making a session does no I/O (it connects on first use, in the
    endpoint's worker thread), so a sync dependency would only add two hops to the thread
    pool per request. Closing hands the connection back to the pool.
    """
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


CurrentUser = Annotated[Identity, Depends(identify)]
DbSession = Annotated[Session, Depends(request_session)]
# A row id in a path: anything a database integer cannot hold is a 422, not a driver error.
RowId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="The record's number.")]
# How many rows to skip in a listing (bounded like any database integer).
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT, description="Rows to skip.")]
