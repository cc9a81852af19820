"""``ingest.parcel_results``: result items into the database, batched across messages.

Sent by ``POST /internal/results`` (a chunk of items per message), by Celery scrape tasks
(one item each) and by scrapers that send straight to the queue, with a list of result items
(JSON objects) as the one argument. The worker does not run messages one by one: the
batching strategy (``tasks.ingest_batching``) holds the messages it receives and hands many
at once to a pool child, which writes them as one chunk with ``run_ingest_batch``. Each
message is acknowledged only after its items are committed as parcels or as
``ingest_rejects`` rows.

Retry policy: never Celery's. Transient database failures are retried inside the child
(``services.ingest.pipeline``); an outage hands the messages back to the worker, which holds
them unacknowledged and tries again. Nothing is acknowledged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Task, states
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from db.session import get_engine, session_scope
from services.ingest.metrics import record_ingest_counts_safely
from services.ingest.pipeline import (
    BatchResult,
    DatabaseUnavailable,
    IngestMessage,
    RetryPolicy,
    prepare_batch,
    reject_whole_batch,
    write_with_retries,
)
from services.ingest.result_messages import INGEST_TASK_NAME
from services.metrics_redis import metrics_redis
from services.queues import INGEST_QUEUE
from settings import get_settings
from tasks.app import app

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldMessage:
    """What a pool child needs of one received message (picklable)."""

    message_id: str
    items: Any  # as sent: normally a list of result items
    request_id: str | None
    wants_result: bool


class BatchStatus:
    OK = "ok"  # committed (items ingested or recorded as rejects): acknowledge
    UNAVAILABLE = "unavailable"  # the database stayed down: hold and try again, not counted
    FAILED = "failed"  # anything else: hold and try again, counted towards quarantine


def retry_policy() -> RetryPolicy:
    settings = get_settings()
    return RetryPolicy(
        max_attempts=settings.ingest_max_attempts,
        base_delay_s=settings.ingest_retry_base_s,
        max_delay_s=settings.ingest_retry_max_s,
        outage_wait_s=settings.ingest_outage_wait_s,
        lock_timeout_ms=int(settings.ingest_lock_timeout_s * 1000),
    )


def is_database_up() -> bool:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def run_ingest_batch(held: Sequence[HeldMessage], quarantine_reason: str | None = None) -> str:
    """Runs in a pool child: write the messages' items as one chunk; returns a ``BatchStatus``.

    With ``quarantine_reason`` (the messages killed their child before), every item is
    recorded as a reject with that reason instead of being tried again.
    """
    messages = [IngestMessage(m.message_id, m.items, m.request_id) for m in held]
    try:
        batch = prepare_batch(messages)
        if quarantine_reason is not None:
            with session_scope() as session:
                result = reject_whole_batch(session, batch, quarantine_reason)
        else:
            result = write_with_retries(
                batch,
                session_scope=session_scope,
                is_database_up=is_database_up,
                policy=retry_policy(),
            )
    except DatabaseUnavailable as exc:
        logger.warning("ingest of %d messages handed back: database down (%s)", len(held), exc)
        return BatchStatus.UNAVAILABLE
    except Exception:
        logger.exception("ingest of %d messages failed; they are held and tried again", len(held))
        return BatchStatus.FAILED
    _report(held, result)
    return BatchStatus.OK


def _report(held: Sequence[HeldMessage], result: BatchResult) -> None:
    """Outcomes for the senders that wait on them, and the shared ingest counters."""
    for message in held:
        if message.wants_result:
            outcome = result.messages[message.message_id].as_json()
            app.backend.store_result(message.message_id, outcome, states.SUCCESS)
    if result.rejects:
        logger.warning("ingest recorded rejects: %s", dict(result.rejects))
    totals = result.totals()
    record_ingest_counts_safely(
        metrics_redis(), totals, result.unparsed, result.rejects, chunk_items=sum(totals.values())
    )


class BatchedIngestTask(Task):  # type: ignore[misc]
    """A task whose messages the worker batches (see ``tasks.ingest_batching``)."""

    Strategy = "tasks.ingest_batching:batching_strategy"


# Late ack is the strategy's own: a message is acknowledged after its chunk's commit.
@app.task(
    name=INGEST_TASK_NAME,
    base=BatchedIngestTask,
    bind=True,
    queue=INGEST_QUEUE,
    ignore_result=False,
    acks_late=True,
)
def ingest_parcel_results(self: Task, items: list[dict[str, Any]]) -> dict[str, Any]:
    """One message alone (``apply()``, or a worker without the batching strategy)."""
    held = HeldMessage(str(self.request.id), items, None, wants_result=False)
    messages = [IngestMessage(held.message_id, held.items)]
    result = write_with_retries(
        prepare_batch(messages),
        session_scope=session_scope,
        is_database_up=is_database_up,
        policy=retry_policy(),
    )
    _report([held], result)
    return result.messages[held.message_id].as_json()
