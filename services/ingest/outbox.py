"""The result outbox: an accepted ingest message is kept in PostgreSQL until it is written.

Accepted means kept, and a broker message is not kept: kombu's Redis transport takes it off
the queue (BRPOP) and records it as unacked in a separate MULTI, so a Redis killed in between
loses it. ``POST /internal/results`` therefore commits one row per message (``record_outbox``)
before it publishes; the ingest deletes a message's row in the transaction that writes or
rejects its items (``forget_outbox_messages``); and a periodic job sends again, under the
same id and with the same items, the messages still there after a grace
(``claim_due_outbox_messages``). A message that was only slow is then written twice, which
the ingest takes as a redelivery: parcels are upserted, snapshots are unique per scrape.

Each row is re-published at most once per grace, doubling the wait after every re-publish,
so a backlog longer than the grace is not flooded with copies of itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from db.models import ResultOutbox
from services.ingest.rejects import payload_text
from services.ingest.result_messages import ResultChunk, publish_chunks, split_result_chunks

# A row re-published n times waits grace * 2^n before the next try; capped here (64 graces,
# 5 h 20 min at the default) so a message lost again is still tried a few times a day.
MAX_BACKOFF_DOUBLINGS = 6


@dataclass(frozen=True)
class OutboxBacklog:
    messages: int
    oldest_created_at: datetime | None


@dataclass(frozen=True)
class OutboxMessage:
    chunk: ResultChunk
    request_id: str | None


def record_outbox(
    session: Session, chunks: Sequence[ResultChunk], *, request_id: str | None
) -> None:
    """One row per chunk, in one INSERT; flushes, no commit (commit before publishing)."""
    if not chunks:
        return
    rows = [
        {"message_id": c.message_id, "payload": payload_text(c.items), "request_id": request_id}
        for c in chunks
    ]
    session.execute(insert(ResultOutbox), rows)


def record_and_publish(
    session: Session, payloads: Sequence[object], *, chunk_size: int
) -> list[str]:
    """For senders whose transaction commits after the publish (the reject re-ingest, which
    deletes the rejects it sends): the rows commit with that transaction. Should the ingest
    finish first, its delete misses the uncommitted row, and the message is sent once more
    after the grace; harmless, as for any slow message."""
    chunks = split_result_chunks(payloads, chunk_size=chunk_size)
    record_outbox(session, chunks, request_id=None)
    return publish_chunks(chunks)


def forget_outbox_messages(session: Session, message_ids: Sequence[str]) -> int:
    """Delete the rows of messages whose items this transaction writes; flushes, no commit.

    Messages that were never in the outbox (scrape tasks send straight to the queue) match
    nothing."""
    if not message_ids:
        return 0
    deleted = session.execute(
        delete(ResultOutbox).where(ResultOutbox.message_id.in_(list(message_ids)))
    )
    return int(deleted.rowcount)  # type: ignore[attr-defined]


_CLAIM_DUE = text("""
UPDATE result_outbox o SET republished_at = :now, republish_count = o.republish_count + 1
FROM (
  SELECT message_id FROM result_outbox
  WHERE created_at < :cutoff
    AND coalesce(republished_at, created_at) < :now - make_interval(
      secs => :grace_s * power(2, least(republish_count, :max_doublings)))
  ORDER BY created_at
  LIMIT :limit
  FOR UPDATE SKIP LOCKED
) due
WHERE o.message_id = due.message_id
RETURNING o.message_id, o.payload, o.request_id, o.created_at
""")


def claim_due_outbox_messages(
    session: Session, *, grace_s: float, now: datetime, limit: int
) -> list[OutboxMessage]:
    """The oldest messages (at most ``limit``) still unwritten past their grace, marked as
    re-published; flushes, no commit. Commit before publishing: a second run then skips them,
    and a publish that fails is tried again after the next, longer, wait."""
    claimed = session.execute(
        _CLAIM_DUE,
        {
            "now": now,
            "cutoff": now - timedelta(seconds=grace_s),
            "grace_s": grace_s,
            "max_doublings": MAX_BACKOFF_DOUBLINGS,
            "limit": limit,
        },
    ).all()
    return [
        OutboxMessage(ResultChunk(row.message_id, json.loads(row.payload)), row.request_id)
        for row in sorted(claimed, key=lambda row: row.created_at)  # RETURNING has no order
    ]


def republish_outbox_messages(messages: Sequence[OutboxMessage]) -> int:
    """Send each message again, same id and items, under the request that accepted it."""
    for message in messages:
        publish_chunks([message.chunk], request_id=message.request_id)
    return len(messages)


def read_outbox_backlog(session: Session) -> OutboxBacklog:
    """How many accepted messages are not written yet, and since when the oldest waits."""
    count, oldest = session.execute(select(func.count(), func.min(ResultOutbox.created_at))).one()
    return OutboxBacklog(int(count), oldest)
