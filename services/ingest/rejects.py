"""``ingest_rejects``: accepted result items that could not be written, kept with their reason.

Recording a reject finishes its ledger task the way an ingest does (a task is succeeded once
its result is ingested or quarantined), so the scrape is not repeated for a result that is
already here. Operators list, show, re-ingest and purge them (admin API and CLI).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from db.models import IngestReject, RejectReason
from services.dispatch.completion import TaskResult, mark_tasks_succeeded
from services.errors import InvalidInput, NotFound
from services.ingest.items import ItemRejected, check_parcel_id, check_platform, check_task_id
from services.parcel_identity import normalize_county, normalize_state, parcel_key
from services.text_checks import text_problem

MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class RejectedItem:
    payload: object  # the item as it arrived
    reason_code: RejectReason
    reason: str
    message_id: str | None = None
    request_id: str | None = None


def record_rejects(session: Session, rejects: Sequence[RejectedItem]) -> int:
    """Insert the rejects and finish the ledger tasks they name; flushes, no commit."""
    if not rejects:
        return 0
    session.execute(insert(IngestReject), [_reject_row(reject) for reject in rejects])
    finished = {result for reject in rejects if (result := _task_result_of(reject.payload))}
    mark_tasks_succeeded(session, finished)
    return len(rejects)


def payload_text(payload: object) -> str:
    """The item as ASCII JSON: NUL and lone surrogates survive as escapes."""
    return json.dumps(payload, ensure_ascii=True, default=repr)


def _reject_row(reject: RejectedItem) -> dict[str, Any]:
    fields = reject.payload if isinstance(reject.payload, dict) else {}
    return {
        "reason_code": reject.reason_code.value,
        "reason": _storable(reject.reason, MAX_REASON_CHARS) or reject.reason_code.value,
        "payload": payload_text(reject.payload),
        "task_id": _quietly(check_task_id, fields.get("task_id")),
        "platform": _quietly(check_platform, fields.get("platform")),
        "parcel_id": _quietly(check_parcel_id, fields.get("parcel_id")),
        "request_id": _storable(reject.request_id, 128),
        "message_id": _storable(reject.message_id, 64),
    }


def _storable(value: str | None, max_chars: int) -> str | None:
    if value is None:
        return None
    value = value[:max_chars]
    return None if text_problem(value) else value


def _quietly(check: Any, value: object) -> Any:
    try:
        return check(value)
    except (ItemRejected, InvalidInput):
        return None


def _task_result_of(payload: object) -> TaskResult | None:
    """The ledger task a rejected item names, if the item says enough to check it is its own."""
    if not isinstance(payload, dict):
        return None
    try:
        task_id = check_task_id(payload.get("task_id"))
        if task_id is None:
            return None
        state, county = payload.get("state"), payload.get("county")
        if not isinstance(state, str) or not isinstance(county, str):
            return None
        return TaskResult(
            task_id,
            check_platform(payload.get("platform")),
            normalize_state(state),
            normalize_county(county),
            parcel_key(check_parcel_id(payload.get("parcel_id"))),
        )
    except (ItemRejected, InvalidInput):
        return None


def list_rejects(
    session: Session,
    *,
    reason_code: RejectReason | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[IngestReject]:
    """Newest first; ``before_id`` pages backwards."""
    query = select(IngestReject).order_by(IngestReject.id.desc()).limit(limit)
    if reason_code is not None:
        query = query.where(IngestReject.reason_code == reason_code.value)
    if before_id is not None:
        query = query.where(IngestReject.id < before_id)
    return list(session.scalars(query))


def count_rejects(session: Session) -> dict[str, int]:
    """Rejects held now, by reason code; every reason present."""
    counts = dict.fromkeys((reason.value for reason in RejectReason), 0)
    query = select(IngestReject.reason_code, func.count()).group_by(IngestReject.reason_code)
    counts.update({code: int(n) for code, n in session.execute(query)})
    return counts


def get_reject(session: Session, reject_id: int) -> IngestReject:
    reject = session.get(IngestReject, reject_id)
    if reject is None:
        raise NotFound(f"ingest reject {reject_id} not found")
    return reject


def take_rejects(
    session: Session,
    *,
    ids: Sequence[int] | None = None,
    reason_code: RejectReason | None = None,
    limit: int = 1000,
) -> list[IngestReject]:
    """Lock the rejects to re-ingest (skipping any another re-ingest holds).

    The caller publishes their payloads, then ``delete_rejects`` them in the same
    transaction: a failed publish rolls back and deletes nothing.
    """
    query = select(IngestReject).order_by(IngestReject.id).limit(limit)
    if ids is not None:
        query = query.where(IngestReject.id.in_(list(ids)))
    if reason_code is not None:
        query = query.where(IngestReject.reason_code == reason_code.value)
    return list(session.scalars(query.with_for_update(skip_locked=True)))


def reject_payloads(rejects: Sequence[IngestReject]) -> list[object]:
    return [json.loads(reject.payload) for reject in rejects]


def delete_rejects(
    session: Session,
    *,
    ids: Sequence[int] | None = None,
    reason_code: RejectReason | None = None,
    created_before: datetime | None = None,
) -> int:
    """Delete rejects by id, reason and age (all given filters apply); at least one filter."""
    if ids is None and reason_code is None and created_before is None:
        raise InvalidInput("say which rejects to delete: ids, reason or age")
    statement = delete(IngestReject)
    if ids is not None:
        statement = statement.where(IngestReject.id.in_(list(ids)))
    if reason_code is not None:
        statement = statement.where(IngestReject.reason_code == reason_code.value)
    if created_before is not None:
        statement = statement.where(IngestReject.created_at < created_before)
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]


def reject_task_ids(session: Session, task_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these tasks have a reject row (the ledger invariant's other half)."""
    if not task_ids:
        return set()
    query = select(IngestReject.task_id).where(IngestReject.task_id.in_(list(task_ids)))
    return {task_id for task_id in session.scalars(query) if task_id is not None}


def reingest_rejects(
    session: Session,
    *,
    publish: Callable[[list[object]], object],
    ids: Sequence[int] | None = None,
    reason_code: RejectReason | None = None,
    limit: int = 1000,
) -> int:
    """Send matching rejects back to the ingest queue as they arrived, then delete them.

    Publish comes first: if it fails, the transaction rolls back and every reject stays. An
    item that fails again is recorded again, as a new reject.
    """
    rejects = take_rejects(session, ids=ids, reason_code=reason_code, limit=limit)
    if not rejects:
        return 0
    publish(reject_payloads(rejects))
    return delete_rejects(session, ids=[reject.id for reject in rejects])
