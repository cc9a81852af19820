"""Request-scoped dependencies. The session dependency owns the transaction of a request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from db.session import public_session_scope, session_scope


def get_db() -> Iterator[Session]:
    """Commit when the handler returns, roll back when it raises."""
    with session_scope() as session:
        yield session


def get_public_db() -> Iterator[Session]:
    """``get_db`` on the public API's own pool."""
    with public_session_scope() as session:
        yield session


# scope="function": the commit happens before the response, so a failed commit is a 500.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
PublicSessionDep = Annotated[Session, Depends(get_public_db, scope="function")]
