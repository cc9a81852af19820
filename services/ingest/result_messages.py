"""Ingest messages as their senders see them: the results route, the reject re-ingest (API
and CLI) and the benches publish result items to ``ingest.parcel_results`` and read where
the messages stand. The task itself is ``tasks.ingest``; this side imports no task module."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import states
from celery.result import AsyncResult

from services.dispatch.celery_app import app
from services.queues import INGEST_QUEUE

INGEST_TASK_NAME = "ingest.parcel_results"
OUTCOME_KEYS = ("inserted", "updated", "unchanged", "stale")


@dataclass(frozen=True)
class ResultChunk:
    """One ingest message: its id (the Celery task id) is chosen before it is sent, so the
    result outbox can record the message first and a re-publish can send it again unchanged."""

    message_id: str
    items: list[object]


def split_result_chunks(payloads: Sequence[object], *, chunk_size: int) -> list[ResultChunk]:
    """The items as messages of at most ``chunk_size`` items, each with a new id."""
    return [
        ResultChunk(str(uuid.uuid4()), list(payloads[start : start + chunk_size]))
        for start in range(0, len(payloads), chunk_size)
    ]


def publish_chunks(chunks: Sequence[ResultChunk], *, request_id: str | None = None) -> list[str]:
    """Send each chunk under its own id; returns the ids. Their results are kept
    (``read_ingest_outcomes`` reads them). ``request_id``: the request that accepted them,
    when it is not the current one (a re-publish)."""
    headers = {"request_id": request_id} if request_id else None
    for chunk in chunks:
        app.send_task(
            INGEST_TASK_NAME,
            args=[chunk.items],
            task_id=chunk.message_id,
            queue=INGEST_QUEUE,
            ignore_result=False,
            headers=headers,
        )
    return [chunk.message_id for chunk in chunks]


def publish_result_chunks(payloads: Sequence[object], *, chunk_size: int) -> list[str]:
    """Send the items as ingest messages of at most ``chunk_size`` items; returns their ids.
    Without the outbox (``services.ingest.outbox``): for senders whose items are kept
    elsewhere until written (the ingest benchmark)."""
    return publish_chunks(split_result_chunks(payloads, chunk_size=chunk_size))


@dataclass
class ChunkOutcomes:
    totals: dict[str, int]  # summed over the chunks that finished
    unfinished: list[str] = field(default_factory=list)  # queued, held or being written
    # (task id, index in its chunk, reason) of items recorded in ingest_rejects
    rejected: list[tuple[str, int, str]] = field(default_factory=list)


def read_ingest_outcomes(task_ids: Sequence[str]) -> ChunkOutcomes:
    """Where the ingest messages stand. Reads state with plain GETs (no result subscription),
    so it is safe from any thread."""
    outcomes = ChunkOutcomes(totals=dict.fromkeys(OUTCOME_KEYS, 0))
    for task_id in task_ids:
        result: AsyncResult[Any] = AsyncResult(task_id, app=app)
        if result.state != states.SUCCESS:
            outcomes.unfinished.append(task_id)
            continue
        counts = result.result or {}
        for key in OUTCOME_KEYS:
            outcomes.totals[key] += int(counts.get(key, 0))
        for index, reason in counts.get("errors", []):
            outcomes.rejected.append((task_id, int(index), str(reason)))
    return outcomes
