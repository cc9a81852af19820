"""``POST /internal/results``: items validated one by one, the valid ones queued for ingest."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerUnavailable
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from db.session import session_scope
from gateway_api import worker_examples
from gateway_api.api_docs import WORKER_ERRORS, error_responses
from gateway_api.auth import WorkerDep
from gateway_api.metrics import register_live_collector
from gateway_api.result_outbox_metrics import ResultOutboxCollector
from observability.request_context import get_request_id
from services.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from services.ingest import ResultItem, validate_result_items
from services.ingest.items import ItemError
from services.ingest.metrics import IngestMetricsCollector, record_ingest_counts_safely
from services.ingest.outbox import forget_outbox_messages, record_outbox
from services.ingest.result_answers import (
    RESPOND_ASYNC,
    RefusedItem,
    item_label,
    prefers_respond_async,
    summarise_ingest,
)
from services.ingest.result_messages import (
    ChunkOutcomes,
    ResultChunk,
    publish_chunks,
    read_ingest_outcomes,
    split_result_chunks,
)
from services.metrics_redis import metrics_redis
from settings import get_settings

router = APIRouter(prefix="/internal", tags=["workers"], responses=WORKER_ERRORS)


class PositionedItem(NamedTuple):
    position: int  # in the request body
    item: ResultItem


logger = logging.getLogger(__name__)
_POLL_INTERVAL_S = 0.05


register_live_collector(IngestMetricsCollector(metrics_redis))
register_live_collector(ResultOutboxCollector())


class ResultItemError(BaseModel):
    index: int
    reason: str


class ResultsAccepted(BaseModel):
    """202: accepted and queued; the ingest outcome so far only with ``?wait=``."""

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


class ResultsIngested(BaseModel):
    """200, the original gateway's answer once every accepted item is written, plus more."""

    inserted: int
    updated: int
    failed: int = Field(description="Items refused at validation or recorded in ingest_rejects")
    errors: list[str] = Field(description='"<parcel_id>: <reason>" ("item <index>" without one)')
    accepted: int
    unchanged: int
    stale: int = Field(description="Older than the parcel's latest scrape: kept as history only")
    ingest_failed: int = Field(description="Accepted items recorded in ingest_rejects")
    errors_omitted: int | None = None


class Validated(NamedTuple):
    items: list[PositionedItem]
    errors: list[ItemError]
    labels: dict[int, str]  # body position → how the original's errors name the item


ASYNC_HEADERS = {"Preference-Applied": RESPOND_ASYNC}
_ASYNC_DOC = {
    "model": ResultsAccepted,
    "description": "Accepted and queued: asked with `Prefer: respond-async`, or the ingest"
    " took longer than GATEWAY_RESULTS_SYNC_WAIT_S (or `wait`)",
    "headers": {"Preference-Applied": {"schema": {"type": "string"}}},
}


@router.post(
    "/results",
    response_model=ResultsIngested,
    response_model_exclude_none=True,
    responses={
        200: {"description": "Every accepted item written (or rejected): the original's answer"},
        202: _ASYNC_DOC,
        **error_responses(413),
    },
    summary="Send scraped results",
    openapi_extra=worker_examples.RESULTS_BODY,
)
async def post_results(
    request: Request,
    worker: WorkerDep,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            description="Seconds to wait for the ingest outcome (default: none with"
            " `Prefer: respond-async`, GATEWAY_RESULTS_SYNC_WAIT_S without)",
        ),
    ] = None,
    prefer: Annotated[
        list[str] | None,
        Header(description="RFC 7240; `respond-async`: answer 202 as soon as queued"),
    ] = None,
) -> JSONResponse:
    """Accept scraped results: each item validated alone, valid ones queued before the answer.

    200 with the original's ``{inserted, updated, failed, errors}`` once they are written;
    202 ``{accepted, failed, errors: [{index, reason}]}`` with ``Prefer: respond-async``.
    """
    settings = get_settings()
    body = await read_capped_body(request, limit=settings.results_max_body_bytes)
    checked = await run_in_threadpool(_validate_body, body, settings.results_max_items)
    task_ids, chunks = await run_in_threadpool(_publish, checked.items, settings.ingest_chunk_size)
    if prefers_respond_async(prefer or []):
        outcomes = None
        if wait and task_ids:
            outcomes = await _wait_for_outcomes(task_ids, min(wait, settings.results_max_wait_s))
        return _accepted(checked, chunks, outcomes)
    bound = settings.results_sync_wait_s if wait is None else wait
    outcomes = await _wait_for_outcomes(task_ids, min(bound, settings.results_max_wait_s))
    if outcomes.unfinished:
        return _accepted(checked, chunks, outcomes)
    return _json(_ingested(checked, chunks, outcomes), 200)


def _accepted(
    checked: Validated, chunks: dict[str, list[PositionedItem]], outcomes: ChunkOutcomes | None
) -> JSONResponse:
    errors = list(checked.errors)
    answer = ResultsAccepted(accepted=len(checked.items), failed=len(errors), errors=[])
    if outcomes is not None:
        unfinished = set(outcomes.unfinished)
        errors += [
            ItemError(chunks[task_id][index].position, f"ingest: {reason}")
            for task_id, index, reason in outcomes.rejected
        ]
        answer = answer.model_copy(
            update={
                **outcomes.totals,
                "pending": sum(len(items) for t, items in chunks.items() if t in unfinished),
                "ingest_failed": len(outcomes.rejected),
            }
        )
    limit = get_settings().results_max_errors
    shown = sorted(errors, key=lambda error: error.index)[:limit]
    answer.errors = [ResultItemError(index=e.index, reason=e.reason) for e in shown]
    if len(errors) > len(shown):
        answer.errors_omitted = len(errors) - len(shown)
    return _json(answer, 202, headers=ASYNC_HEADERS)


def _ingested(
    checked: Validated, chunks: dict[str, list[PositionedItem]], outcomes: ChunkOutcomes
) -> ResultsIngested:
    refused = [RefusedItem(e.index, checked.labels[e.index], e.reason) for e in checked.errors]
    for task_id, index, reason in outcomes.rejected:
        position, item = chunks[task_id][index]
        refused.append(RefusedItem(position, item.parcel_id, f"ingest: {reason}"))
    summary = summarise_ingest(
        outcomes.totals,
        refused,
        ingest_failed=len(outcomes.rejected),
        max_errors=get_settings().results_max_errors,
    )
    return ResultsIngested(
        inserted=summary.inserted,
        updated=summary.updated,
        failed=summary.failed,
        errors=summary.errors,
        accepted=len(checked.items),
        unchanged=summary.unchanged,
        stale=summary.stale,
        ingest_failed=summary.ingest_failed,
        errors_omitted=summary.errors_omitted or None,
    )


def _json(
    answer: BaseModel, status_code: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    content = answer.model_dump(mode="json", exclude_none=True)
    return JSONResponse(content, status_code=status_code, headers=headers)


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


def _validate_body(body: bytes, max_items: int) -> Validated:
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
    labels = {index: item_label(raw_items[index], index) for index in failed}
    return Validated(items, errors, labels)


def _publish(
    items: list[PositionedItem], chunk_size: int
) -> tuple[list[str], dict[str, list[PositionedItem]]]:
    """Record the chunks in the result outbox and commit, then publish them: once the answer
    says accepted, PostgreSQL holds them until the ingest has written them (the broker alone
    while the database is down: ``_keep_until_written``)."""
    payloads = [positioned.item.to_payload() for positioned in items]
    result_chunks = split_result_chunks(payloads, chunk_size=chunk_size)
    _keep_until_written(result_chunks)
    task_ids: list[str] = []
    try:
        for chunk in result_chunks:
            task_ids += publish_chunks([chunk])
    except BrokerUnavailable as exc:
        # Not accepted: the worker resends. The chunks sent already are written twice,
        # harmlessly (ingest is idempotent); the others leave the outbox, or every resend
        # during the outage would add copies for the re-publish job to send.
        _forget_unsent(result_chunks[len(task_ids) :])
        raise ServiceUnavailable(
            "ingest queue unavailable; resend the whole request (ingest is idempotent)"
        ) from exc
    chunks = {
        task_id: items[n * chunk_size : (n + 1) * chunk_size] for n, task_id in enumerate(task_ids)
    }
    return task_ids, chunks


def _keep_until_written(chunks: list[ResultChunk]) -> None:
    """Commit the chunks' outbox rows before they are published.

    With the database unreachable the broker alone holds them, as before the outbox: an
    accepted result survives a database outage (the design's promise), so results are still
    accepted during one. The outbox covers a broker that loses a message, the broker covers a
    database that is down; only both at once can lose a result."""
    try:
        with session_scope() as session:
            record_outbox(session, chunks, request_id=get_request_id())
    except SQLAlchemyError as exc:
        logger.warning(
            "result outbox unavailable (%s); %d message(s) kept by the broker alone",
            type(exc).__name__,
            len(chunks),
        )


def _forget_unsent(chunks: list[ResultChunk]) -> None:
    try:
        with session_scope() as session:
            forget_outbox_messages(session, [chunk.message_id for chunk in chunks])
    except SQLAlchemyError as exc:  # kept: the job sends them later, a harmless duplicate
        logger.warning("unsent result messages left in the outbox: %s", type(exc).__name__)


async def _wait_for_outcomes(task_ids: list[str], timeout_s: float) -> ChunkOutcomes:
    deadline = time.monotonic() + timeout_s
    while True:
        outcomes = await run_in_threadpool(read_ingest_outcomes, task_ids)
        if not outcomes.unfinished or time.monotonic() >= deadline:
            return outcomes
        await asyncio.sleep(_POLL_INTERVAL_S)
