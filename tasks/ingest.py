"""``ingest.parcel_results``: one chunk of result items into the database, on the ingest queue.

Sent by ``POST /internal/results`` and directly by Celery scrape workers, with a list of
result items (JSON objects). Each item is validated again here, since scrapers send straight
to the queue; invalid ones are counted as rejected and skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from celery import Task, states
from celery.result import AsyncResult
from sqlalchemy import exc as sa_exc

from db.session import session_scope
from services.ingest import ingest_result_items
from services.ingest.metrics import metrics_redis, record_ingest_counts_safely
from settings import get_settings
from tasks.app import app
from tasks.queues import INGEST_QUEUE

logger = logging.getLogger(__name__)

INGEST_TASK_NAME = "ingest.parcel_results"
OUTCOME_KEYS = ("inserted", "updated", "unchanged", "stale")
# Connection loss, server shutdown, deadlock, serialization failure: worth trying again.
DATABASE_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
)
# SQLSTATEs of a lost race rather than a bug: a retry sees the other transaction's commit.
UNIQUE_VIOLATION = "23505"
RACE_SQLSTATES = frozenset({UNIQUE_VIOLATION, "40P01", "40001"})  # + deadlock, serialization
# A unique violation that survives this many retries is not a race but a bug: fail, log it.
MAX_UNIQUE_VIOLATION_RETRIES = 5


def is_worth_retrying(exc: BaseException, *, retries: int) -> bool:
    """Whether a database error is transient: an outage or a race another try will win.

    A unique violation is retried only a few times: the parcel upsert arbitrates the one
    unique constraint on the identity, so a violation is at most a lost race.
    """
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return True
    # SQLAlchemy wraps the driver's error; the staging COPY's raw cursor raises it bare.
    sqlstate = getattr(getattr(exc, "orig", exc), "pgcode", None)
    if sqlstate == UNIQUE_VIOLATION:
        return retries < MAX_UNIQUE_VIOLATION_RETRIES
    return sqlstate in RACE_SQLSTATES


def database_retry_delay_s(retries: int) -> float:
    """Exponential backoff, capped far below the visibility timeout and the task time limit."""
    settings = get_settings()
    return float(
        min(settings.ingest_retry_base_s * 2 ** min(retries, 16), settings.ingest_retry_max_s)
    )


# Retry policy: a database outage, a deadlock or a serialization failure is retried for as
# long as it lasts (max_retries=None), so an accepted result is never dropped; a unique
# violation (a race on a parcel's first insert) a few times (``is_worth_retrying``). The
# backoff sleep happens here, while the message is still unacknowledged (late ack), never as
# a Celery eta/countdown parked in a worker's memory; then the task re-queues itself with no
# eta. Any other error is a bug: the task fails, is logged
# and its outcome recorded; the items stay valid for a replay since ingest is idempotent.
@app.task(
    name=INGEST_TASK_NAME,
    bind=True,
    queue=INGEST_QUEUE,
    ignore_result=False,
    acks_late=True,
    max_retries=None,
)
def ingest_parcel_results(self: Task, items: list[dict[str, Any]]) -> dict[str, int]:
    """Upsert one chunk of results; returns rows by outcome (inserted/updated/unchanged/...)."""
    try:
        with session_scope() as session:
            outcome = ingest_result_items(session, items)
    except (*DATABASE_UNAVAILABLE, sa_exc.DBAPIError, psycopg2.Error) as exc:
        if not is_worth_retrying(exc, retries=self.request.retries):
            raise
        delay = database_retry_delay_s(self.request.retries)
        logger.warning(
            "ingest of %d items waits %.1fs for the database (attempt %d): %s",
            len(items), delay, self.request.retries + 1, exc.__class__.__name__,
        )  # fmt: skip
        time.sleep(delay)
        raise self.retry(exc=exc, countdown=0) from exc
    if outcome.errors:
        logger.warning("ingest rejected %d items: %s", outcome.rejected, outcome.errors[:5])
    counts = outcome.counts()
    record_ingest_counts_safely(metrics_redis(), counts, outcome.unparsed)
    return counts


def publish_result_chunks(payloads: Sequence[dict[str, Any]], *, chunk_size: int) -> list[str]:
    """Send the items as ingest tasks of at most ``chunk_size`` items; returns the task ids."""
    task_ids = []
    for start in range(0, len(payloads), chunk_size):
        chunk = list(payloads[start : start + chunk_size])
        task_ids.append(ingest_parcel_results.apply_async(args=[chunk]).id)
    return task_ids


@dataclass
class ChunkOutcomes:
    totals: dict[str, int]  # summed over the chunks that succeeded
    unfinished: list[str] = field(default_factory=list)  # queued, running or retrying
    failed: list[str] = field(default_factory=list)


def read_ingest_outcomes(task_ids: Sequence[str]) -> ChunkOutcomes:
    """Where the ingest tasks stand. Reads task state with plain GETs (no result
    subscription), so it is safe from any thread."""
    outcomes = ChunkOutcomes(totals=dict.fromkeys(OUTCOME_KEYS, 0))
    for task_id in task_ids:
        result: AsyncResult[Any] = AsyncResult(task_id, app=app)
        state = result.state
        if state == states.SUCCESS:
            counts = result.result or {}
            for key in OUTCOME_KEYS:
                outcomes.totals[key] += int(counts.get(key, 0))
        elif state in states.READY_STATES:
            outcomes.failed.append(task_id)
        else:
            outcomes.unfinished.append(task_id)
    return outcomes
