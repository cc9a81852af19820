"""Periodic and operator jobs on the ``maintenance`` queue."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import text

from db.session import session_scope
from observability.request_context import get_request_id
from services.dispatch.broker_client import read_queue_depth
from services.ingest.outbox import claim_due_outbox_messages, republish_outbox_messages
from services.queues import INGEST_QUEUE
from settings import get_settings
from tasks.app import app

logger = logging.getLogger(__name__)


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


# Retry policy: none; the next beat tick is the retry (a claimed message whose publish failed
# is due again after its next, doubled, wait).
@app.task(name="maintenance.republish_result_outbox")
def republish_result_outbox(grace_s: float | None = None) -> int:
    """Accepted results the ingest has not written within the grace are sent again.

    Not while messages wait in the ingest queue: an unwritten one may be among them (a backlog,
    not a loss), and sending copies would double the backlog as the ingest recovers. Lost
    messages are sent again once the queue has drained."""
    settings = get_settings()
    grace = settings.result_outbox_grace_s if grace_s is None else grace_s
    waiting = read_queue_depth(INGEST_QUEUE)
    if waiting:
        logger.info("%d ingest message(s) waiting: the outbox re-sends nothing yet", waiting)
        return 0
    with session_scope() as session:
        due = claim_due_outbox_messages(
            session,
            grace_s=grace,
            now=datetime.now(UTC),
            limit=settings.result_outbox_republish_limit,
        )
    if due:
        logger.warning("re-publishing %d accepted result message(s) not yet written", len(due))
    return republish_outbox_messages(due)
