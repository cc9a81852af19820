"""Periodic and operator jobs on the ``maintenance`` queue."""

from __future__ import annotations

from sqlalchemy import text

from db.session import session_scope
from observability.request_context import get_request_id
from tasks.app import app


@app.task(name="maintenance.ping", ignore_result=False)
def ping() -> dict[str, object]:
    """Round trip through a worker and the database: proves a worker is really working."""
    with session_scope() as session:
        database_ok = session.execute(text("SELECT 1")).scalar_one() == 1
    return {"pong": True, "database": database_ok}


@app.task(name="maintenance.echo_request_id", ignore_result=False)
def echo_request_id() -> str | None:
    """Return the request id the task runs under: lets operators check log correlation."""
    return get_request_id()
