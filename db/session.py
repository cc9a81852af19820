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
# The API's public (/v1) requests get their own small pool, so anonymous search traffic can
# never hold the connections that leasing, completes and heartbeats need.
_public_engine: Engine | None = None
_public_session_factory: sessionmaker[Session] | None = None


def make_engine(
    database_url: str,
    *,
    role: str,
    # Connections are opened on demand, so a Celery child keeps one; the API's threadpool (40
    # threads) keeps up to this many, instead of reconnecting for every request past five.
    pool_size: int = 20,
    max_overflow: int = 20,
    pool_timeout_s: float = 30.0,
    statement_timeout_ms: int | None = None,
) -> Engine:
    connect_args: dict[str, object] = {
        "application_name": f"taxlien-{role}",
        "connect_timeout": 5,
    }
    if statement_timeout_ms is not None:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return create_engine(
        to_sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def configure_engine(role: str, database_url: str | None = None) -> Engine:
    """(Re)create this process's engine; disposes the previous one without closing the parent's."""
    global _engine, _session_factory, _public_engine, _public_session_factory
    if _engine is not None:
        _engine.dispose(close=False)
    # A public pool made for the previous configuration is dropped with it (public sessions
    # use this engine until ``configure_public_engine`` is called again).
    if _public_engine is not None:
        _public_engine.dispose(close=False)
        _public_engine, _public_session_factory = None, None
    _engine = make_engine(database_url or get_settings().database_url, role=role)
    _session_factory = sessionmaker(bind=_engine, expire_on_commit=False)
    return _engine


def configure_public_engine(
    role: str, *, pool_size: int, pool_timeout_s: float, statement_timeout_ms: int
) -> Engine:
    """(Re)create the public API's pool: ``pool_size`` connections at most, a bounded wait for
    one, and a time budget on every statement."""
    global _public_engine, _public_session_factory
    if _public_engine is not None:
        _public_engine.dispose(close=False)
    _public_engine = make_engine(
        get_settings().database_url,
        role=role,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout_s=pool_timeout_s,
        statement_timeout_ms=statement_timeout_ms,
    )
    _public_session_factory = sessionmaker(bind=_public_engine, expire_on_commit=False)
    return _public_engine


@contextmanager
def public_session_scope() -> Iterator[Session]:
    """``session_scope`` on the public pool (the main pool when none was configured)."""
    if _public_session_factory is None:
        with session_scope() as session:
            yield session
        return
    session = _public_session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


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
