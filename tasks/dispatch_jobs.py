"""Periodic dispatch jobs (beat, ``maintenance`` queue). Each is idempotent and bounded.

Retry policy for all of them: none. They run again at the next beat tick, which is the retry;
beat gives each message an expiry of one interval so a backlog never piles up.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from db.session import session_scope
from services.dispatch.broker_client import (
    publish_scrape_messages,
    read_queue_depths,
    restore_expired_unacked,
)
from services.dispatch.publishing import (
    count_published_queued,
    find_unpublished,
    find_vanished,
    requeue_due_retries,
)
from services.dispatch.reaper import reap_expired_leases, reap_stale_workers
from settings import get_settings
from tasks.app import app

logger = logging.getLogger(__name__)


@app.task(name="maintenance.republish_unpublished")
def republish_unpublished(grace_s: float | None = None) -> int:
    """Rows written but never published (the publisher died after the commit)."""
    grace = get_settings().unpublished_grace_s if grace_s is None else grace_s
    with session_scope() as session:
        messages = find_unpublished(session, older_than_s=grace, now=datetime.now(UTC))
    return publish_scrape_messages(messages)


@app.task(name="maintenance.republish_due_retries")
def republish_due_retries() -> int:
    """``retry_wait`` rows whose time has come go back to their queue."""
    with session_scope() as session:
        messages = requeue_due_retries(session, now=datetime.now(UTC))
    return publish_scrape_messages(messages)


@app.task(name="maintenance.republish_vanished")
def republish_vanished(grace_s: float | None = None) -> int:
    """Queued rows whose message is no longer in the broker get a new one."""
    grace = get_settings().vanished_grace_s if grace_s is None else grace_s
    restore_expired_unacked()
    # Compare like with like: only rows published before ``cutoff`` (taken before the queues
    # are read) are counted, so a message sent while or after the queues are read never
    # looks missing; they are counted after the reading, so a row leased meanwhile (its
    # message gone from the queue) is not counted either. Either slip can only hide a loss
    # until the next run. Only queues that were read are compared.
    cutoff = datetime.now(UTC)
    with session_scope() as session:
        keys = count_published_queued(session, published_before=cutoff)
    if not keys:
        return 0
    depths = read_queue_depths(keys)
    with session_scope() as session:
        counted = count_published_queued(session, published_before=cutoff)
        expected = {key: n for key, n in counted.items() if key in depths}
        messages = find_vanished(
            session, expected=expected, depths=depths, grace_s=grace, now=datetime.now(UTC)
        )
    if messages:
        logger.warning("re-publishing %d queued task(s) whose message vanished", len(messages))
    return publish_scrape_messages(messages)


@app.task(name="maintenance.reap_leases")
def reap_leases() -> dict[str, int]:
    """Expired leases and leases of silent workers become failed attempts."""
    settings = get_settings()
    now = datetime.now(UTC)
    with session_scope() as session:
        expired = reap_expired_leases(session, now=now)
        stale = reap_stale_workers(session, now=now, stale_s=settings.heartbeat_stale_s)
    return {"expired": expired, "stale_worker": stale}
