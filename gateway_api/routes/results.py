"""``POST /internal/results``: items validated one by one, the valid ones queued for ingest."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from kombu.exceptions import OperationalError as BrokerUnavailable
from pydantic import BaseModel

from gateway_api.auth import WorkerDep
from gateway_api.metrics import register_live_collector
from services.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from services.ingest import ResultItem, validate_result_items
from services.ingest.items import ItemError
from services.ingest.metrics import (
    IngestMetricsCollector,
    metrics_redis,
    record_ingest_counts_safely,
)
from settings import get_settings
from tasks.ingest import ChunkOutcomes, publish_result_chunks, read_ingest_outcomes

router = APIRouter(prefix="/internal", tags=["worker"])


class PositionedItem(NamedTuple):
    position: int  # in the request body
    item: ResultItem


_POLL_INTERVAL_S = 0.05


register_live_collector(IngestMetricsCollector(metrics_redis))


class ResultItemError(BaseModel):
    index: int
    reason: str


class ResultsAccepted(BaseModel):
    accepted: int
    failed: int
    errors: list[ResultItemError]
    # Only with ?wait=: outcome of the accepted items whose ingest finished in time.
    inserted: int | None = None
    updated: int | None = None
    unchanged: int | None = None
    stale: int | None = None
    pending: int | None = None  # accepted items whose ingest is still queued or running
    # accepted items recorded in ingest_rejects instead of parcels (reasons in errors)
    ingest_failed: int | None = None
    errors_omitted: int | None = None  # errors beyond the first results_max_errors


@router.post(
    "/results", status_code=202, response_model=ResultsAccepted, response_model_exclude_none=True
)
async def post_results(
    request: Request,
    worker: WorkerDep,
    wait: Annotated[float, Query(ge=0, description="Seconds to wait for the ingest outcome")] = 0,
) -> ResultsAccepted:
    """Accept scraped results: each item validated alone, valid ones queued before the answer."""
    settings = get_settings()
    body = await read_capped_body(request, limit=settings.results_max_body_bytes)
    items, errors = await run_in_threadpool(_validate_body, body, settings.results_max_items)
    task_ids, chunks = await run_in_threadpool(_publish, items, settings.ingest_chunk_size)
    answer = ResultsAccepted(accepted=len(items), failed=len(errors), errors=[])
    if wait > 0 and task_ids:
        outcomes = await _wait_for_outcomes(task_ids, min(wait, settings.results_max_wait_s))
        unfinished = set(outcomes.unfinished)
        errors = errors + [
            ItemError(chunks[task_id][index].position, f"ingest: {reason}")
            for task_id, index, reason in outcomes.rejected
        ]
        answer = answer.model_copy(
            update={
                **outcomes.totals,
                "pending": sum(len(chunks[t]) for t in task_ids if t in unfinished),
                "ingest_failed": len(outcomes.rejected),
            }
        )
    shown = sorted(errors, key=lambda error: error.index)[: settings.results_max_errors]
    answer.errors = [ResultItemError(index=e.index, reason=e.reason) for e in shown]
    if len(errors) > len(shown):
        answer.errors_omitted = len(errors) - len(shown)
    return answer


async def read_capped_body(request: Request, *, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    return bytes(received)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _validate_body(body: bytes, max_items: int) -> tuple[list[PositionedItem], list[ItemError]]:
    try:
        raw_items = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError and bad UTF-8 are both ValueErrors
        raise InvalidInput(f"body: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise InvalidInput("body: JSON nested too deeply") from exc
    if not isinstance(raw_items, list):
        raise InvalidInput("body: must be a JSON array of result items")
    if len(raw_items) > max_items:
        raise PayloadTooLarge(
            f"body: {len(raw_items)} result items; at most {max_items} per request"
        )
    checked, errors = validate_result_items(raw_items)
    failed = {error.index for error in errors}
    positions = (index for index in range(len(raw_items)) if index not in failed)
    items = [PositionedItem(index, item) for index, item in zip(positions, checked, strict=True)]
    if errors:
        record_ingest_counts_safely(metrics_redis(), {"rejected": len(errors)}, {})
    return items, errors


def _publish(
    items: list[PositionedItem], chunk_size: int
) -> tuple[list[str], dict[str, list[PositionedItem]]]:
    payloads = [positioned.item.to_payload() for positioned in items]
    try:
        task_ids = publish_result_chunks(payloads, chunk_size=chunk_size)
    except BrokerUnavailable as exc:
        raise ServiceUnavailable(
            "ingest queue unavailable; resend the whole request (ingest is idempotent)"
        ) from exc
    chunks = {
        task_id: items[n * chunk_size : (n + 1) * chunk_size] for n, task_id in enumerate(task_ids)
    }
    return task_ids, chunks


async def _wait_for_outcomes(task_ids: list[str], timeout_s: float) -> ChunkOutcomes:
    deadline = time.monotonic() + timeout_s
    while True:
        outcomes = await run_in_threadpool(read_ingest_outcomes, task_ids)
        if not outcomes.unfinished or time.monotonic() >= deadline:
            return outcomes
        await asyncio.sleep(_POLL_INTERVAL_S)
