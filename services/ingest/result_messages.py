"""Ingest messages as their senders see them: the results route, the reject re-ingest (API
and CLI) and the benches publish result items to ``ingest.parcel_results`` and read where
the messages stand. The task itself is ``tasks.ingest``; this side imports no task module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import states
from celery.result import AsyncResult

from services.dispatch.celery_app import app
from services.queues import INGEST_QUEUE

INGEST_TASK_NAME = "ingest.parcel_results"
OUTCOME_KEYS = ("inserted", "updated", "unchanged", "stale")


def publish_result_chunks(payloads: Sequence[object], *, chunk_size: int) -> list[str]:
    """Send the items as ingest messages of at most ``chunk_size`` items; returns their ids.
    Their results are kept (``read_ingest_outcomes`` reads them)."""
    task_ids = []
    for start in range(0, len(payloads), chunk_size):
        chunk = list(payloads[start : start + chunk_size])
        sent = app.send_task(
            INGEST_TASK_NAME, args=[chunk], queue=INGEST_QUEUE, ignore_result=False
        )
        task_ids.append(sent.id)
    return task_ids


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
