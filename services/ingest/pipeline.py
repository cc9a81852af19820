"""A batch of ingest messages (from any senders) written as one chunk, and nothing dropped.

Each message is the list of result items one sender queued. The batch is validated once;
invalid items go to ``ingest_rejects``. The valid ones are written in one transaction with
one COPY and one statement; if that fails on a deterministic error, the chunk is split in
halves (each in a savepoint) until the items at fault are found, and those are recorded as
rejects while the rest is written. The transaction that keeps a message's items (written or
rejected) also deletes its result outbox row (``services.ingest.outbox``).
``write_with_retries`` owns the transactions: a database outage is waited out without
counting against the items, transient failures are retried with jittered, capped backoff up
to a limit, and what outlasts the limit is recorded as rejects.
Every item of an acknowledged message thus ends as a parcel row or a reject row.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import RejectReason
from services.ingest.batch import OUTCOMES, IngestOutcome, ingest_items
from services.ingest.database_faults import DatabaseFault, classify_database_error
from services.ingest.items import ResultItem, validate_result_items
from services.ingest.outbox import forget_outbox_messages
from services.ingest.rejects import RejectedItem, record_rejects

logger = logging.getLogger(__name__)


COUNT_KEYS = (*OUTCOMES, "rejected")


@dataclass(frozen=True)
class IngestMessage:
    message_id: str
    items: Sequence[object]  # result items as the sender queued them
    request_id: str | None = None


@dataclass
class MessageResult:
    """One message's items by outcome; ``errors`` are (index in the message, reason)."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((*OUTCOMES, "rejected"), 0)
    )
    errors: list[tuple[int, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {**self.counts, "errors": [list(error) for error in self.errors]}


@dataclass
class BatchResult:
    messages: dict[str, MessageResult]
    unparsed: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)  # reason code -> items

    def totals(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for result in self.messages.values():
            totals.update(result.counts)
        return dict(totals)


@dataclass(frozen=True)
class _Slot:
    """Where a valid item came from, so its outcome reaches its own message."""

    message: IngestMessage
    index: int
    item: ResultItem
    raw: object


@dataclass(frozen=True)
class PreparedBatch:
    messages: Sequence[IngestMessage]
    valid: list[_Slot]
    invalid: list[tuple[IngestMessage, int, RejectedItem]]


def prepare_batch(messages: Sequence[IngestMessage]) -> PreparedBatch:
    """Validate every item of every message once."""
    valid: list[_Slot] = []
    invalid: list[tuple[IngestMessage, int, RejectedItem]] = []
    for message in messages:
        items = message.items if isinstance(message.items, list | tuple) else [message.items]
        checked, errors = validate_result_items(items)
        error_at = {error.index: error.reason for error in errors}
        ok = iter(checked)
        for index, raw in enumerate(items):
            if index in error_at:
                reject = _reject(message, raw, RejectReason.INVALID, error_at[index])
                invalid.append((message, index, reject))
            else:
                valid.append(_Slot(message, index, next(ok), raw))
    return PreparedBatch(messages, valid, invalid)


def write_batch(session: Session, batch: PreparedBatch) -> BatchResult:
    """Write a prepared batch in the caller's transaction: parcels, snapshots, rejects and the
    ledger tasks they finish. Raises only what is not the items' fault (outage, races)."""
    result = BatchResult({message.message_id: MessageResult() for message in batch.messages})
    written, poisoned = _write_isolating(session, batch.valid)
    for slot, outcome in written:
        result.messages[slot.message.message_id].counts[outcome] += 1
        result.unparsed.update(slot.item.unparsed)
    rejects = [(m, i, r) for m, i, r in batch.invalid]
    rejects += [
        (slot.message, slot.index, _reject(slot.message, slot.raw, RejectReason.POISON, reason))
        for slot, reason in poisoned
    ]
    _record(session, result, rejects)
    _forget_outbox_rows(session, batch)
    return result


def reject_whole_batch(session: Session, batch: PreparedBatch, reason: str) -> BatchResult:
    """Record every item as a reject (``retry_exhausted``; invalid ones as ``invalid``)."""
    result = BatchResult({message.message_id: MessageResult() for message in batch.messages})
    rejects = list(batch.invalid)
    rejects += [
        (s.message, s.index, _reject(s.message, s.raw, RejectReason.RETRY_EXHAUSTED, reason))
        for s in batch.valid
    ]
    _record(session, result, rejects)
    _forget_outbox_rows(session, batch)
    return result


def _forget_outbox_rows(session: Session, batch: PreparedBatch) -> None:
    # In the transaction that writes the items: the row goes exactly when they are kept, and
    # a try that rolls back leaves it for the re-publish job.
    forget_outbox_messages(session, [message.message_id for message in batch.messages])


def _record(
    session: Session,
    result: BatchResult,
    rejects: list[tuple[IngestMessage, int, RejectedItem]],
) -> None:
    record_rejects(session, [reject for _, _, reject in rejects])
    for message, index, reject in rejects:
        message_result = result.messages[message.message_id]
        message_result.counts["rejected"] += 1
        message_result.errors.append((index, reject.reason))
        result.rejects[reject.reason_code.value] += 1
    for message_result in result.messages.values():
        message_result.errors.sort()


def _reject(message: IngestMessage, raw: object, code: RejectReason, reason: str) -> RejectedItem:
    return RejectedItem(raw, code, reason, message.message_id, message.request_id)


def _write_isolating(
    session: Session, slots: list[_Slot]
) -> tuple[list[tuple[_Slot, str]], list[tuple[_Slot, str]]]:
    """(slot, outcome) of the written items and (slot, reason) of the items at fault.

    Each try runs in a savepoint, so a failed half leaves the transaction usable; errors that
    are not the items' fault are raised for the caller to retry the whole batch.
    """
    if not slots:
        return [], []
    try:
        with session.begin_nested():
            outcome: IngestOutcome = ingest_items(session, [slot.item for slot in slots])
    except Exception as exc:
        if classify_database_error(exc) is not DatabaseFault.POISON:
            raise
        if len(slots) == 1:
            logger.warning("ingest item isolated as poison: %s", _describe(exc))
            return [], [(slots[0], f"could not be written: {_describe(exc)}")]
        middle = len(slots) // 2
        first_written, first_poisoned = _write_isolating(session, slots[:middle])
        rest_written, rest_poisoned = _write_isolating(session, slots[middle:])
        return first_written + rest_written, first_poisoned + rest_poisoned
    return list(zip(slots, outcome.item_outcomes, strict=True)), []


def _describe(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    sqlstate = getattr(original, "pgcode", None)
    first_line = (str(original).strip().splitlines() or [""])[0][:300]
    label = f"SQLSTATE {sqlstate}" if sqlstate else original.__class__.__name__
    return f"{label}: {first_line}" if first_line else label


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # tries of a batch that fails transiently, before its rejects
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    outage_wait_s: float = 60.0  # how long one call waits out an outage before giving up
    lock_timeout_ms: int = 10_000

    def delay_s(self, attempt: int) -> float:
        """Full jitter over an exponential backoff capped at ``max_delay_s``."""
        ceiling = min(self.base_delay_s * 2 ** min(attempt, 20), self.max_delay_s)
        return random.uniform(self.base_delay_s / 2, max(ceiling, self.base_delay_s / 2))


class DatabaseUnavailable(Exception):
    """The database stayed down for the whole wait: hand the messages back, unacknowledged."""


SessionScope = Callable[[], AbstractContextManager[Session]]


def write_with_retries(
    batch: PreparedBatch,
    *,
    session_scope: SessionScope,
    is_database_up: Callable[[], bool],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchResult:
    """Write the batch, each try in its own transaction; see the module docstring."""
    attempt, outage_waited_s = 0, 0.0
    while True:
        try:
            with session_scope() as session:
                _limit_lock_waits(session, policy)
                return write_batch(session, batch)
        except Exception as exc:
            fault = classify_database_error(exc)
            if fault is DatabaseFault.OUTAGE and not is_database_up():
                if outage_waited_s >= policy.outage_wait_s:
                    raise DatabaseUnavailable(_describe(exc)) from exc
                delay = policy.delay_s(0)
                logger.warning("ingest waits %.1fs for the database: %s", delay, _describe(exc))
                outage_waited_s += delay
                sleep(delay)
                continue
            attempt += 1
            if attempt >= policy.max_attempts:
                reason = f"gave up after {attempt} attempts: {_describe(exc)}"
                logger.error("ingest of %d items %s", len(batch.valid), reason)
                with session_scope() as session:
                    return reject_whole_batch(session, batch, reason)
            delay = policy.delay_s(attempt)
            logger.warning(
                "ingest attempt %d failed (%s), again in %.1fs", attempt, _describe(exc), delay
            )
            sleep(delay)


def _limit_lock_waits(session: Session, policy: RetryPolicy) -> None:
    # A chunk that waits on a lock longer than this is a transient failure, retried and
    # counted, never a slot held indefinitely.
    session.execute(text(f"SET LOCAL lock_timeout = {int(policy.lock_timeout_ms)}"))
