"""Leasing for HTTP workers: take messages from the Celery queues, write leases, then ack.

Within one call, on one channel: messages are taken with ``basic_get(no_ack=False)`` in strict
priority order, their leases committed to the ledger, and only then acknowledged. A crash
before the commit leaves the messages unacked (the channel's close, or the broker, puts them
back); a crash after the commit leaves a leased row plus a message that comes back as a
duplicate and is dropped. The ledger owns this transaction here because the ack must follow
the commit. No message outlives the call: the channel is closed before returning.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kombu import Connection, Message, Queue
from kombu.exceptions import KombuError
from sqlalchemy.exc import OperationalError

from db.models import ScrapeTask
from db.session import session_scope
from services.dispatch.leases import claim_leases
from services.errors import ServiceUnavailable
from tasks.queues import PRIORITIES, scrape_queue_name

logger = logging.getLogger(__name__)
QueueFactory = Callable[[str], Queue]
_declared: set[str] = set()


@dataclass(frozen=True)
class TakenMessage:
    message: Message
    task_id: uuid.UUID | None


def lease_work(
    connection: Connection,
    *,
    queue_for: QueueFactory,
    platforms: Sequence[str],
    capacity: int,
    worker_id: str,
    lease_timeout_s: float,
) -> list[ScrapeTask]:
    """Lease up to ``capacity`` tasks: every p1 of the platforms before any p2, and so on."""
    errors = (KombuError, *connection.connection_errors, *connection.channel_errors)
    try:
        connection.ensure_connection(max_retries=1)
        channel = connection.channel()
    except errors as exc:
        raise ServiceUnavailable("the broker is unreachable") from exc
    leased: list[ScrapeTask] = []
    try:
        for priority in PRIORITIES:
            queues = [_bound(queue_for, channel, scrape_queue_name(p, priority)) for p in platforms]
            while len(leased) < capacity:
                taken = take_round_robin(queues, capacity - len(leased))
                if not taken:
                    break
                batch, is_acked = lease_and_ack(taken, worker_id, lease_timeout_s, errors)
                leased.extend(batch)
                if not is_acked:
                    return leased  # the broker is gone: hand out what the ledger holds
        return leased
    except errors as exc:
        _declared.clear()  # a queue deleted on the broker is declared again next time
        if leased:
            logger.warning("broker failed mid-lease (%s); returning %d leases", exc, len(leased))
            return leased
        raise ServiceUnavailable("the broker connection failed while leasing") from exc
    except ServiceUnavailable:
        if leased:  # the database went away after earlier batches were leased and acked
            return leased
        raise
    finally:
        _close_quietly(channel, errors)


def _bound(queue_for: QueueFactory, channel: object, name: str) -> Queue:
    queue = queue_for(name).bind(channel)
    if name not in _declared:
        # A worker may poll before anything was published; AMQP refuses unknown queues.
        queue.declare()
        _declared.add(name)
    return queue


def take_round_robin(queues: Sequence[Queue], wanted: int) -> list[TakenMessage]:
    """One message per queue in turn until ``wanted`` are taken or every queue is empty."""
    taken: list[TakenMessage] = []
    live = list(queues)
    while live and len(taken) < wanted:
        for queue in list(live):
            message = queue.get(no_ack=False, accept=["json"])
            if message is None:
                live.remove(queue)
                continue
            taken.append(TakenMessage(message, _ledger_id(message)))
            if len(taken) >= wanted:
                break
    return taken


def _ledger_id(message: Message) -> uuid.UUID | None:
    """The Celery task id (protocol 2 header) is the ledger id."""
    raw = (message.headers or {}).get("id")
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def lease_and_ack(
    taken: Sequence[TakenMessage],
    worker_id: str,
    lease_timeout_s: float,
    errors: tuple[type[BaseException], ...],
) -> tuple[list[ScrapeTask], bool]:
    """Commit the leases of the taken messages, then ack them all; returns the leases and
    whether the acks went through."""
    ids = [t.task_id for t in taken if t.task_id is not None]
    try:
        with session_scope() as session:
            leased = claim_leases(
                session,
                ids,
                worker_id=worker_id,
                lease_timeout_s=lease_timeout_s,
                now=datetime.now(UTC),
            )
    except OperationalError as exc:
        raise ServiceUnavailable("the database is unreachable; nothing was leased") from exc
    # Committed: the ledger holds the leases. Everything taken is acked now, the duplicates
    # (rows no longer queued) and foreign messages included, so they are dropped for good.
    dropped = len(taken) - len(leased)
    if dropped:
        logger.info("dropped %d duplicate or foreign scrape message(s)", dropped)
    return leased, ack_messages([t.message for t in taken], errors)


def ack_messages(messages: Sequence[Message], errors: tuple[type[BaseException], ...]) -> bool:
    """Ack after the commit. If the broker is gone now, the leases stand: the messages come
    back later as duplicates of leased rows and are dropped then."""
    for message in messages:
        try:
            message.ack()
        except errors as exc:
            logger.warning("ack failed after the lease was written (%s); duplicate expected", exc)
            return False
    return True


def _close_quietly(channel: object, errors: tuple[type[BaseException], ...]) -> None:
    try:
        channel.close()  # type: ignore[attr-defined]
    except errors as exc:
        logger.warning("closing the leasing channel failed: %s", exc)
