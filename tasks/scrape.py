"""``scrape.parcel``: the task contract the Celery fleet implements, with its bookkeeping.

Published by the gateway to ``scrape.{platform}.p{priority}`` with the ledger id as the
Celery task id and the task envelope (``services.dispatch.envelopes``) as the one argument.
The worker claims the row (``queued`` → ``running``; a duplicate delivery claims nothing and
returns; a redelivery after the run was lost takes it over), runs the platform's scraper and
sends the result to ``ingest.parcel_results``. The ingest marks the row succeeded once the
result is written (or recorded as a reject), so the task writes the ledger once.

Politeness: before the claim the start must fit the fleet's start budget of the task's
platform and county; a task over budget is put off in the ledger (``retry_wait`` until its
slot, no attempt counted) and the task returns at once, so the worker process is free for
the next message: no sleep, no countdown held in worker memory.

Retry policy: never Celery's own. A failure is recorded in the ledger (``retry_wait`` with
backoff, or ``dead`` after the last retry) and the beat re-publishes it when due.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from db.models import ScrapeTask
from db.session import session_scope
from scrapers import ScrapeFailed, ScrapeTarget, get_scraper
from services.dispatch.broker_client import run_lease_s
from services.dispatch.envelopes import SCRAPE_TASK_NAME
from services.dispatch.failures import FailureReason
from services.dispatch.outcome_metrics import DeliveryPath, record_duplicates_dropped
from services.dispatch.politeness import hold_for_budget
from services.dispatch.running import claim_run, fail_run, running_holder
from services.ingest.result_messages import INGEST_TASK_NAME
from tasks.app import app

logger = logging.getLogger(__name__)
HOLDER_PING_TIMEOUT_S = 3.0


@app.task(name=SCRAPE_TASK_NAME, bind=True, ignore_result=True)
def scrape_parcel(self: Task, envelope: dict[str, Any]) -> str:
    task_id = uuid.UUID(str(envelope["task_id"]))
    me = str(self.request.hostname or "celery")
    is_redelivery = bool((self.request.delivery_info or {}).get("redelivered"))
    lost = _lost_holders(task_id, me) if is_redelivery else set()
    with session_scope() as session:
        wait_s = hold_for_budget(
            session,
            task_id,
            platform=str(envelope.get("platform", "")),
            county=str(envelope.get("county", "")),
            now=datetime.now(UTC),
        )
        claimed = None
        if wait_s <= 0:
            claimed = claim_run(
                session,
                task_id,
                worker_name=me,
                run_lease_s=run_lease_s(),
                is_redelivery=is_redelivery,
                lost_holders=lost,
                now=datetime.now(UTC),
            )
    if wait_s > 0:
        logger.info("task %s is over its start budget: put off %.1fs", task_id, wait_s)
        return "deferred"
    if claimed is None:
        logger.info("task %s is not queued: duplicate delivery dropped", task_id)
        record_duplicates_dropped(DeliveryPath.CELERY)
        return "duplicate"
    assert claimed.lease_token is not None
    try:
        data, parse_ms = _run_scraper(claimed)
    except ScrapeFailed as exc:
        return _record_failure(
            claimed, exc.reason, exc.message, exc.is_retryable, retry_after_s=exc.retry_after_s
        )
    except SoftTimeLimitExceeded:
        return _record_failure(claimed, FailureReason.TIMEOUT, "soft time limit reached", True)
    except Exception as exc:
        logger.exception("scraper for %s raised", claimed.platform)
        return _record_failure(claimed, FailureReason.PARSER_BUG, repr(exc)[:500], True)
    # Nobody waits on this message's outcome: the ledger row is where it shows.
    app.send_task(
        INGEST_TASK_NAME, args=[[_result_item(claimed, data, parse_ms)]], ignore_result=True
    )
    return "sent"


def _lost_holders(task_id: uuid.UUID, me: str) -> set[str]:
    """A redelivered task still marked running on another node: is that node gone?

    Its main process answers pings even while its pool children are busy, so silence means
    the node died (kill -9, lost host) and handed the message back; the run is lost.
    """
    with session_scope() as session:
        holder = running_holder(session, task_id)
    if holder is None or holder == me:
        return set()
    replies = app.control.ping(destination=[holder], timeout=HOLDER_PING_TIMEOUT_S)
    if replies:
        return set()
    logger.warning("task %s was running on %s, which no longer answers", task_id, holder)
    return {holder}


def _run_scraper(task: ScrapeTask) -> tuple[dict[str, str], int]:
    scraper = get_scraper(task.platform)
    if scraper is None:
        # A deployment error, not the task's: dead at once with a clear reason, so an operator
        # fixes the worker's queues (see scrapers.registered_platforms) and re-drives.
        raise ScrapeFailed(
            FailureReason.NO_SCRAPER,
            f"no scraper for platform {task.platform!r} on this worker",
            is_retryable=False,
        )
    target = ScrapeTarget(
        task_id=str(task.id),
        platform=task.platform,
        state=task.state,
        county=task.county,
        parcel_id=task.parcel_id,
        url=task.url,
        attempt=task.attempt,
    )
    started = time.perf_counter()
    data = scraper(target)
    return data, int((time.perf_counter() - started) * 1000)


def _result_item(task: ScrapeTask, data: dict[str, str], parse_ms: int) -> dict[str, Any]:
    """Shaped like one item of the ``POST /internal/results`` body."""
    return {
        "task_id": str(task.id),
        "parcel_id": task.parcel_id,
        "platform": task.platform,
        "state": task.state,
        "county": task.county,
        "data": data,
        "scraped_at": datetime.now(UTC).isoformat(),
        "parse_duration_ms": parse_ms,
    }


def _record_failure(
    task: ScrapeTask,
    reason: str,
    message: str,
    is_retryable: bool,
    *,
    retry_after_s: float | None = None,
) -> str:
    assert task.lease_token is not None
    with session_scope() as session:
        outcome = fail_run(
            session,
            task.id,
            lease_token=task.lease_token,
            reason=str(reason),
            message=message,
            is_retryable=is_retryable,
            retry_after_s=retry_after_s,
            now=datetime.now(UTC),
        )
    if outcome is None:
        return "lost_lease"
    return "retry_wait" if outcome.should_retry else "dead"
