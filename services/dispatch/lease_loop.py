"""Leasing for HTTP workers: take messages from the Celery queues, write leases, then ack.

Within one call: messages are taken unacknowledged in strict priority order (from a
``MessageSource``), their leases committed to the ledger, and only then acknowledged. A
crash before the commit leaves the messages unacked (closing the source, or the broker, puts
them back); a crash after the commit leaves a leased row plus a message that comes back as a
duplicate and is dropped. The ledger owns this transaction here because the ack must follow
the commit. No message outlives the call: the source is closed before returning, and closing
puts back whatever was taken and not acknowledged.

A taken task whose start does not fit the fleet's start budget (``politeness``) is put off in
the same transaction and its message acked with the others, so the next messages (other
platforms and counties, in priority order) are leased in its place.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.exc import OperationalError

from db.session import session_scope
from services.dispatch.leases import LeasedTask, claim_leases
from services.dispatch.outcome_metrics import DeliveryPath, record_duplicates_dropped
from services.dispatch.politeness import defer_starts, ration_starts
from services.errors import ServiceUnavailable
from services.queues import PRIORITIES, scrape_queue_name

logger = logging.getLogger(__name__)
# One call puts off at most about this many over-budget tasks before it answers: a deep
# backlog of a limited platform is not moved to the ledger in one request.
MAX_DEFERRED_PER_CALL = 500


@dataclass(frozen=True)
class TakenMessage:
    """A message taken unacknowledged; ``handle`` is its source's own record of it."""

    task_id: uuid.UUID | None
    handle: object
    source: MessageSource


@dataclass
class DeferredStarts:
    """Tasks a leasing call put off for want of start budget, and the soonest next slot."""

    count: int = 0
    soonest_s: float | None = None

    def note(self, waits_s: Sequence[float]) -> None:
        if waits_s:
            self.count += len(waits_s)
            soonest = min(waits_s)
            self.soonest_s = soonest if self.soonest_s is None else min(self.soonest_s, soonest)


class MessageSource(Protocol):
    """Scrape queues as leasing reads them, on one broker connection."""

    errors: tuple[type[BaseException], ...]  # what a broker failure raises

    def take(self, levels: Sequence[Sequence[str]], wanted: int) -> list[TakenMessage]:
        """Up to ``wanted`` messages, unacknowledged: every queue of a level (round robin)
        before any of the next."""
        ...

    def ack(self, messages: Sequence[TakenMessage]) -> None: ...

    def close(self) -> None:
        """Put back what was taken and not acknowledged."""
        ...


def queue_levels(platforms: Sequence[str]) -> list[list[str]]:
    """The platforms' scrape queues by priority: every p1 queue, then every p2, ..."""
    return [[scrape_queue_name(p, priority) for p in platforms] for priority in PRIORITIES]


def lease_work(
    source: MessageSource,
    *,
    platforms: Sequence[str],
    capacity: int,
    worker_id: str,
    lease_timeout_s: float,
    deferred: DeferredStarts | None = None,
) -> list[LeasedTask]:
    """Lease up to ``capacity`` tasks: every p1 of the platforms before any p2, and so on.
    Tasks put off for want of budget are counted in ``deferred``."""
    levels = queue_levels(platforms)
    leased: list[LeasedTask] = []
    deferred = DeferredStarts() if deferred is None else deferred
    put_off_cap = deferred.count + MAX_DEFERRED_PER_CALL  # the collector may span calls
    try:
        while len(leased) < capacity and deferred.count < put_off_cap:
            taken = source.take(levels, capacity - len(leased))
            if not taken:
                break
            batch, is_acked = lease_and_ack(
                taken, worker_id, lease_timeout_s, source.errors, deferred
            )
            leased.extend(batch)
            if not is_acked:
                break  # the broker is gone: hand out what the ledger holds
        return leased
    except source.errors as exc:
        if leased:
            logger.warning("broker failed mid-lease (%s); returning %d leases", exc, len(leased))
            return leased
        raise ServiceUnavailable("the broker connection failed while leasing") from exc
    except ServiceUnavailable:
        if leased:  # the database went away after earlier batches were leased and acked
            return leased
        raise
    finally:
        close_quietly(source)


def ledger_id(raw_id: object) -> uuid.UUID | None:
    """The Celery task id (protocol 2 header ``id``) is the ledger id."""
    try:
        return uuid.UUID(str(raw_id))
    except ValueError:
        return None


def lease_and_ack(
    taken: Sequence[TakenMessage],
    worker_id: str,
    lease_timeout_s: float,
    errors: tuple[type[BaseException], ...],
    deferred: DeferredStarts,
) -> tuple[list[LeasedTask], bool]:
    """Commit the leases (and the put-off starts) of the taken messages, then ack them all;
    returns the leases and whether the acks went through."""
    ids = [t.task_id for t in taken if t.task_id is not None]
    try:
        with session_scope() as session:
            allowed, waits = ration_starts(session, ids)
            now = datetime.now(UTC)  # after the slots were granted: the start times
            leased = claim_leases(
                session, allowed, worker_id=worker_id, lease_timeout_s=lease_timeout_s, now=now
            )
            put_off = defer_starts(session, waits, now=now)
    except OperationalError as exc:
        raise ServiceUnavailable("the database is unreachable; nothing was leased") from exc
    deferred.note(list(waits.values()))
    # Committed: the ledger holds the leases. Everything taken is acked now, the duplicates
    # (rows no longer queued) and foreign messages included, so they are dropped for good;
    # the put-off tasks wait in the ledger and are published again when due.
    dropped = len(taken) - len(leased) - put_off
    if dropped:
        logger.info("dropped %d duplicate or foreign scrape message(s)", dropped)
        record_duplicates_dropped(DeliveryPath.HTTP, dropped)
    return leased, ack_messages(taken, errors)


def ack_messages(messages: Sequence[TakenMessage], errors: tuple[type[BaseException], ...]) -> bool:
    """Ack after the commit (one source's messages). If the broker is gone now, the leases
    stand: the messages come back later as duplicates of leased rows and are dropped then."""
    try:
        if messages:
            messages[0].source.ack(messages)
    except errors as exc:
        logger.warning("ack failed after the lease was written (%s); duplicate expected", exc)
        return False
    return True


def close_quietly(source: MessageSource) -> None:
    try:
        source.close()
    except source.errors as exc:
        logger.warning("closing the leasing source failed: %s", exc)
