"""Failed attempts: retry with exponential backoff (recorded in the ledger) or dead-letter.

A retry is a ``retry_wait`` row with its ``due_at``; the periodic job re-publishes it when due.
Nothing is parked in a worker's memory as a Celery eta/countdown.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Platform, ScrapeTask, TaskStatus
from services.dispatch.outcome_metrics import TaskOutcome, note_attempt_finished
from settings import get_settings


class FailureReason(enum.StrEnum):
    PLATFORM_DOWN = "platform_down"
    FORMAT_CHANGED = "format_changed"
    RATE_LIMITED = "rate_limited"
    BLOCKED = "blocked"
    PARSER_BUG = "parser_bug"
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"  # the worker gave no reason (the original's clients send no body)
    OTHER = "other"  # a reason of the worker's own words, kept in the message
    # Recorded by the gateway itself, never sent by a worker.
    LEASE_EXPIRED = "lease_expired"
    WORKER_STALE = "worker_stale"
    WORKER_LOST = "worker_lost"
    NO_SCRAPER = "no_scraper"  # a Celery worker consumed a platform it has no scraper for


_GATEWAY_REASONS = (
    FailureReason.LEASE_EXPIRED,
    FailureReason.WORKER_STALE,
    FailureReason.WORKER_LOST,
    FailureReason.NO_SCRAPER,
)
WORKER_REASONS = frozenset(r for r in FailureReason if r not in _GATEWAY_REASONS)
_MESSAGE_LIMIT = 2000
_HISTORY_LIMIT = 20


def classify_worker_reason(reason: str | None, message: str) -> tuple[str, str]:
    """The reason code to record for a worker's reason, and the message to keep with it.

    The original gateway ignored the fail body, so its clients may send any reason text. A
    known reason (any case) is recorded as its code; no reason is ``unknown``; any other text
    (a gateway-only reason included: a worker cannot claim its lease expired) is ``other``,
    its words kept at the head of the message, so the code stays one of a few (dead-letter
    filters and metric labels) and nothing the worker said is lost.
    """
    text = (reason or "").strip()
    if not text:
        return FailureReason.UNKNOWN.value, message
    if text.lower() in WORKER_REASONS:
        return text.lower(), message
    return FailureReason.OTHER.value, f"{text}: {message}" if message else text


@dataclass(frozen=True)
class FailureOutcome:
    should_retry: bool
    retry_after_s: int | None
    moved_to_dlq: bool
    attempt: int


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    backoff_base_s: int

    def backoff_s(self, attempt: int) -> int:
        """30 s · 2^(attempt-1) with the default base: 30, 60, 120 ..."""
        return int(self.backoff_base_s * 2 ** max(attempt - 1, 0))


def retry_policy(session: Session, task: ScrapeTask) -> RetryPolicy:
    """The task's own max_retries (fixed at enqueue) and its platform's backoff base."""
    base = session.execute(
        select(Platform.retry_backoff_base_s).where(Platform.name == task.platform)
    ).scalar_one_or_none()
    if base is None:
        base = get_settings().retry_backoff_base_s
    return RetryPolicy(max_retries=task.max_retries, backoff_base_s=base)


def record_failed_attempt(
    session: Session,
    task: ScrapeTask,
    *,
    reason: str,
    message: str,
    retry_suggested: bool = True,
    now: datetime,
) -> FailureOutcome:
    """Close the task's current attempt as failed: ``retry_wait`` with backoff, or ``dead``.

    ``task`` must be locked by the caller (``SELECT ... FOR UPDATE`` or a guarded UPDATE).
    ``attempt`` counts attempts started, so retries used so far are ``attempt - 1``.
    """
    policy = retry_policy(session, task)
    entry: dict[str, Any] = {
        "attempt": task.attempt,
        "reason": reason,
        "message": message[:_MESSAGE_LIMIT],
        "worker": task.leased_by,
        "at": now.isoformat(),
    }
    task.error_history = [*task.error_history, entry][-_HISTORY_LIMIT:]
    task.last_error_reason = reason
    task.last_error_message = message[:_MESSAGE_LIMIT]
    task.lease_expires_at = None
    will_retry = retry_suggested and task.attempt <= policy.max_retries
    outcome = TaskOutcome.RETRIED if will_retry else TaskOutcome.DEAD
    note_attempt_finished(session, task, outcome, now=now, reason=reason)
    if will_retry:
        delay_s = policy.backoff_s(task.attempt)
        task.status = TaskStatus.RETRY_WAIT.value
        task.due_at = now + timedelta(seconds=delay_s)
        session.flush()
        return FailureOutcome(True, delay_s, False, task.attempt)
    task.status = TaskStatus.DEAD.value
    task.due_at = None
    task.finished_at = now
    session.flush()
    return FailureOutcome(False, None, True, task.attempt)
