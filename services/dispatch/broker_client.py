"""The Celery app's broker as dispatch uses it: publish scrape messages, lease for HTTP
workers, read queue depths. Callers commit the ledger first; publishing follows the commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis
from celery.app.amqp import task_message
from kombu import Connection, Queue
from kombu.exceptions import KombuError, LimitExceeded
from redis.exceptions import RedisError

from db.session import session_scope
from services.dispatch.celery_app import app
from services.dispatch.enqueue import EnqueueReport, EnqueueRequest, enqueue_tasks
from services.dispatch.envelopes import SCRAPE_TASK_NAME, ScrapeMessage
from services.dispatch.kombu_source import KombuSource
from services.dispatch.lease_loop import DeferredStarts, MessageSource, lease_work
from services.dispatch.leases import LeasedTask
from services.dispatch.publishing import QueueKey, mark_published
from services.dispatch.redis_source import RedisQueueLayout, RedisSource
from services.dispatch.wakeup_channel import announce_published, count_by_platform
from services.errors import ServiceUnavailable
from services.queues import scrape_queue_name
from settings import get_settings

logger = logging.getLogger(__name__)
POOL_ACQUIRE_TIMEOUT_S = 10.0
# Rows are marked published this many messages at a time (see publish_scrape_messages).
PUBLISH_MARK_EVERY = 500


class BrokerPoolExhausted(ServiceUnavailable):
    """Every pooled broker connection stayed busy (e.g. more long polls than the pool)."""

    headers = {"Retry-After": "1"}


@contextmanager
def pooled_connection(*, timeout_s: float | None = None) -> Iterator[Connection]:
    """A connection from the app's pool; a pool still exhausted after the timeout is a 503."""
    try:
        connection = app.pool.acquire(block=True, timeout=timeout_s or POOL_ACQUIRE_TIMEOUT_S)
    except LimitExceeded as exc:
        raise BrokerPoolExhausted(
            f"all {app.pool.limit} broker connections are busy; retry shortly"
        ) from exc
    with connection:
        yield connection


def queue_for(name: str) -> Queue:
    """The queue exactly as Celery declares it (a missing queue is created on demand)."""
    queue: Queue = app.amqp.queues[name]
    return queue


def publish_scrape_messages(messages: Sequence[ScrapeMessage]) -> int:
    """Publish, recording ``published_at`` every ``PUBLISH_MARK_EVERY`` messages.

    Each slice goes to the broker as one batch where the transport batches (kombu's
    ``Producer.batch``: one Redis pipeline; AMQP publishes one by one, each confirmed) and is
    marked only once the batch is sent. Marking in slices keeps a long run's rows from
    looking unpublished to the periodic re-publisher (after ``unpublished_grace_s``) while
    their messages are already queued. A broker failure stops the run; the rest stay
    unpublished and the periodic job retries (a message sent twice is dropped as a duplicate
    when taken). Each slice is announced on the wake-up channel as soon as it is sent, so
    waiting long polls lease it at once. Returns how many were published.
    """
    published = 0
    try:
        template = scrape_task_message_template()
        with app.producer_or_acquire() as producer:
            for start in range(0, len(messages), PUBLISH_MARK_EVERY):
                chunk = messages[start : start + PUBLISH_MARK_EVERY]
                for queue_name in sorted({m.queue for m in chunk}):
                    producer.maybe_declare(queue_for(queue_name))  # once here, not per message
                with producer.batch(max_size=len(chunk)):
                    for message in chunk:
                        send_scrape_message(producer, message, template)
                announce_published(count_by_platform([str(m.envelope["platform"]) for m in chunk]))
                _mark_published([m.task_id for m in chunk])
                published += len(chunk)
    except (KombuError, OSError, RedisError) as exc:
        logger.warning(
            "published %d of %d scrape messages; the rest wait for the re-publisher: %s",
            published,
            len(messages),
            exc,
        )
    return published


def send_scrape_message(producer: Any, message: ScrapeMessage, template: task_message) -> None:
    """What ``app.send_task`` does for a scrape message, less what it does not need: no
    registry lookup or routing (the queue is known), no result bookkeeping (the ledger is the
    record), no declare (done once per batch), a cheap ``argsrepr`` (Celery's saferepr costs
    ten times more) and the task message copied from ``template`` (``build_scrape_task_message``)
    rather than made anew. Celery's own sender publishes it, with its signals and retries."""
    app.amqp.send_task_message(
        producer,
        SCRAPE_TASK_NAME,
        build_scrape_task_message(template, message),
        queue=queue_for(message.queue),
        declare=[],
    )


def scrape_task_message_template() -> task_message:
    """Celery's task message for ``scrape.parcel``, less what differs from one task to the next."""
    return app.amqp.create_task_message("", SCRAPE_TASK_NAME, [], ignore_result=True, argsrepr="")


def build_scrape_task_message(template: task_message, message: ScrapeMessage) -> task_message:
    """The message ``app.amqp.create_task_message`` makes for this task, at a fraction of its
    cost: only the id, the argument and its repr differ between scrape tasks; the rest (the
    origin, time limits, options) is the template's. The template's nested values are shared,
    never changed: Celery's sender and the ``before_task_publish`` handler replace top-level
    keys of the copies only."""
    task_id = str(message.task_id)
    args = [message.envelope]
    _, kwargs, options = template.body
    return template._replace(
        headers={**template.headers, "id": task_id, "root_id": task_id, "argsrepr": repr(args)},
        properties={**template.properties, "correlation_id": task_id},
        body=(args, kwargs, options),
    )


def _mark_published(task_ids: Sequence[uuid.UUID]) -> None:
    if task_ids:
        with session_scope() as session:
            mark_published(session, task_ids, now=datetime.now(UTC))


def lease_from_broker(
    *,
    platforms: Sequence[str],
    capacity: int,
    worker_id: str,
    lease_timeout_s: float,
    deferred: DeferredStarts | None = None,
) -> list[LeasedTask]:
    """One leasing pass on a pooled connection (released before returning); tasks put off
    for want of start budget are counted in ``deferred``."""
    with pooled_connection() as connection:
        return lease_work(
            message_source(connection),
            platforms=platforms,
            capacity=capacity,
            worker_id=worker_id,
            lease_timeout_s=lease_timeout_s,
            deferred=deferred,
        )


def message_source(connection: Connection) -> MessageSource:
    """The Redis fast path on a Redis broker (on the pooled connection's own channel, so
    its Redis connections are reused), kombu's ``basic_get`` on any other."""
    if not get_settings().is_redis_broker:
        return KombuSource(connection, queue_for)
    try:
        channel = connection.default_channel
    except (KombuError, *connection.connection_errors) as exc:
        raise ServiceUnavailable("the broker is unreachable") from exc
    client = redis.Redis(connection_pool=channel.pool)  # keys are prefixed by the layout
    return RedisSource(client, RedisQueueLayout.of_channel(channel))


def read_queue_depths(keys: Iterable[QueueKey]) -> dict[QueueKey, int]:
    """Messages waiting in each scrape queue (taken ones not counted)."""
    depths: dict[QueueKey, int] = {}
    with pooled_connection() as connection:
        channel = connection.channel()
        try:
            for platform, priority in keys:
                queue = queue_for(scrape_queue_name(platform, priority)).bind(channel)
                _, count, _ = queue.queue_declare()
                depths[(platform, priority)] = int(count)
        finally:
            channel.close()
    return depths


def read_queue_depth(name: str) -> int:
    """Messages waiting in queue ``name`` (taken ones not counted)."""
    with pooled_connection() as connection:
        channel = connection.channel()
        try:
            _, count, _ = queue_for(name).bind(channel).queue_declare()
            return int(count)
        finally:
            channel.close()


def restore_expired_unacked(limit: int = 1000) -> None:
    """Redis only: put messages unacked past the visibility timeout back in their queues.

    kombu does this only inside a consumer's poll loop; with HTTP workers alone no such loop
    runs, so the maintenance job does it (kombu's own mutex keeps concurrent runs apart).
    """
    if not get_settings().is_redis_broker:
        return
    with pooled_connection() as connection:
        channel = connection.channel()
        try:
            channel.qos.restore_visible(num=limit, interval=1)
        finally:
            channel.close()


def run_lease_s() -> float:
    return float(get_settings().celery_run_lease_s)


def enqueue_and_publish(
    requests: Sequence[EnqueueRequest], *, request_id: str | None = None
) -> EnqueueReport:
    """Write the ledger rows and commit, then publish (the API and the CLI enqueue this way)."""
    with session_scope() as session:
        report = enqueue_tasks(session, requests, request_id=request_id)
    publish_scrape_messages(report.messages)
    return report
