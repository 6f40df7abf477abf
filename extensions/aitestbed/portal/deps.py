"""FastAPI dependencies shared by the portal's routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from aitestbed.portal.auth import Identity, identify


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
