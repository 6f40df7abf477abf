"""FastAPI dependencies shared by the portal's routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from aitestbed.portal.auth import Identity, identify


def request_session(request: Request) -> Iterator[Session]:
    """A database session for one request, from the app's session factory."""
    with request.app.state.sessions() as session:
        yield session


CurrentUser = Annotated[Identity, Depends(identify)]
DbSession = Annotated[Session, Depends(request_session)]
