"""One engine per process, named by role, and the transaction scope owned by the edges.

The API, each Celery worker child and beat call ``configure_engine(role)`` once; a forked
child must call it again (``worker_process_init``) so no connection crosses a fork.
Service functions take a ``Session`` and may flush, never commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from settings import get_settings, to_sqlalchemy_url

_engine: Engine | None = None
_session_factory: sessionmaker[Session] | None = None


def make_engine(database_url: str, *, role: str, pool_size: int = 5) -> Engine:
    return create_engine(
        to_sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"application_name": f"taxlien-{role}", "connect_timeout": 5},
    )


def configure_engine(role: str, database_url: str | None = None) -> Engine:
    """(Re)create this process's engine; disposes the previous one without closing the parent's."""
    global _engine, _session_factory
    if _engine is not None:
        _engine.dispose(close=False)
    _engine = make_engine(database_url or get_settings().database_url, role=role)
    _session_factory = sessionmaker(bind=_engine, expire_on_commit=False)
    return _engine


def get_engine() -> Engine:
    if _engine is None:
        return configure_engine("app")
    return _engine


def new_session() -> Session:
    if _session_factory is None:
        configure_engine("app")
    assert _session_factory is not None
    return _session_factory()


@contextmanager
def session_scope() -> Iterator[Session]:
    """Commit on success, roll back on any error; the only place tasks commit."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
