"""What a database error means for an ingest: wait for the database, try again, or isolate.

- ``OUTAGE``: the connection failed or the server is going away. The items are not at fault;
  the ingest waits for the database without counting an attempt against them.
- ``TRANSIENT``: a lost race or a wait that ran out (deadlock, serialization, a unique
  violation on a concurrent first insert, lock or statement timeout). Another try may win; the
  attempts are counted and limited.
- ``POISON``: anything else is deterministic: the same items fail the same way every time.
  The chunk is split to find the items at fault; the rest is written.
"""

from __future__ import annotations

import enum

import psycopg2
from sqlalchemy import exc as sa_exc


class DatabaseFault(enum.Enum):
    OUTAGE = "outage"
    TRANSIENT = "transient"
    POISON = "poison"


# Class 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot connect now;
# 53300: too many connections.
_OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# Serialization failure, deadlock, unique violation (a race on a first insert), lock not
# available (lock_timeout), query canceled (statement_timeout).
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "23505", "55P03", "57014"})


def classify_database_error(exc: BaseException) -> DatabaseFault:
    """Classify an exception raised while writing a chunk (any exception, not only the DB's)."""
    original = getattr(exc, "orig", None) or exc
    sqlstate = getattr(original, "pgcode", None)
    if sqlstate is not None:
        if sqlstate.startswith("08") or sqlstate in _OUTAGE_SQLSTATES:
            return DatabaseFault.OUTAGE
        if sqlstate in _TRANSIENT_SQLSTATES:
            return DatabaseFault.TRANSIENT
        return DatabaseFault.POISON
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return DatabaseFault.OUTAGE
    # No SQLSTATE: the client library lost or never had a connection.
    if isinstance(original, psycopg2.OperationalError | psycopg2.InterfaceError):
        return DatabaseFault.OUTAGE
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return DatabaseFault.OUTAGE  # pool timeouts included: the database is not answering
    return DatabaseFault.POISON
