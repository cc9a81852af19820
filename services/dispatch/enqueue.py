"""Enqueue: write ledger rows, idempotently per active (platform, state, county, parcel).

The caller commits, then publishes the returned messages (``tasks.scrape_publisher``); rows
written but never published are picked up by the periodic re-publisher.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import ACTIVE_STATUSES, ACTIVE_STATUSES_SQL, Platform, ScrapeTask
from services.dispatch.envelopes import ScrapeMessage, scrape_message
from services.dispatch.outcome_metrics import note_tasks_enqueued
from services.errors import InvalidInput
from services.parcel_identity import normalize_county, normalize_state, parcel_key
from services.queues import DEFAULT_PRIORITY, PRIORITIES
from settings import get_settings

MAX_BATCH = 10_000
_ACTIVE_WHERE = text(f"status IN ({ACTIVE_STATUSES_SQL})")
_IDENTITY = ("platform", "state", "county", "parcel_key")


@dataclass(frozen=True)
class EnqueueRequest:
    platform: str
    state: str
    county: str
    parcel_id: str
    url: str | None = None
    priority: int | None = None


class ItemStatus(enum.StrEnum):
    ENQUEUED = "enqueued"
    ALREADY_ACTIVE = "already_active"
    INVALID = "invalid"


@dataclass(frozen=True)
class ItemOutcome:
    index: int
    status: ItemStatus
    task_id: uuid.UUID | None = None
    error: str | None = None


@dataclass
class EnqueueReport:
    outcomes: list[ItemOutcome] = field(default_factory=list)
    messages: list[ScrapeMessage] = field(default_factory=list)

    def count(self, status: ItemStatus) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is status)


def enqueue_tasks(
    session: Session, requests: Sequence[EnqueueRequest], *, request_id: str | None = None
) -> EnqueueReport:
    """Insert one ledger row per valid, not-yet-active request; report every item by index."""
    if len(requests) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} tasks, got {len(requests)}")
    platforms = {p.name: p for p in session.execute(select(Platform)).scalars()}
    outcomes: dict[int, ItemOutcome] = {}
    rows: list[dict[str, Any]] = []
    for index, request in enumerate(requests):
        try:
            rows.append(_ledger_row(request, platforms, request_id))
        except InvalidInput as exc:
            outcomes[index] = ItemOutcome(index, ItemStatus.INVALID, error=exc.message)
            continue
        rows[-1]["_index"] = index
    inserted = _insert_rows(session, rows)
    note_tasks_enqueued(session, (task.platform for task in inserted.values()))
    report = EnqueueReport()
    skipped = [row for row in rows if row["id"] not in inserted]
    existing = _active_ids(session, skipped)
    for row in rows:
        index = row["_index"]
        if row["id"] in inserted:
            outcomes[index] = ItemOutcome(index, ItemStatus.ENQUEUED, task_id=row["id"])
            report.messages.append(scrape_message(inserted[row["id"]]))
        else:
            task_id = existing.get(tuple(row[k] for k in _IDENTITY))
            outcomes[index] = ItemOutcome(index, ItemStatus.ALREADY_ACTIVE, task_id=task_id)
    report.outcomes = [outcomes[i] for i in sorted(outcomes)]
    return report


def _ledger_row(
    request: EnqueueRequest, platforms: dict[str, Platform], request_id: str | None
) -> dict[str, Any]:
    platform = platforms.get(request.platform.strip().lower())
    if platform is None:
        raise InvalidInput(f"unknown platform {request.platform!r}")
    if not platform.is_enabled:
        raise InvalidInput(f"platform {platform.name!r} is disabled")
    priority = DEFAULT_PRIORITY if request.priority is None else request.priority
    if priority not in PRIORITIES:
        raise InvalidInput(f"priority must be one of {list(PRIORITIES)}, got {priority}")
    parcel_id = request.parcel_id.strip()
    if not parcel_id:
        raise InvalidInput("parcel_id is empty")
    max_retries = platform.max_retries
    return {
        "id": uuid.uuid4(),
        "platform": platform.name,
        "state": normalize_state(request.state),
        "county": normalize_county(request.county),
        "parcel_id": parcel_id,
        "parcel_key": parcel_key(parcel_id),
        "url": (request.url or "").strip() or None,
        "priority": priority,
        "max_retries": get_settings().max_retries if max_retries is None else max_retries,
        "request_id": request_id,
    }


def _insert_rows(session: Session, rows: list[dict[str, Any]]) -> dict[uuid.UUID, ScrapeTask]:
    """One INSERT ... ON CONFLICT DO NOTHING; returns the rows actually inserted, by id."""
    if not rows:
        return {}
    statement = (
        insert(ScrapeTask)
        .on_conflict_do_nothing(index_elements=list(_IDENTITY), index_where=_ACTIVE_WHERE)
        .returning(ScrapeTask)
    )
    params = [{k: v for k, v in row.items() if k != "_index"} for row in rows]
    tasks = session.scalars(statement, params).all()
    return {task.id: task for task in tasks}


def _active_ids(session: Session, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], uuid.UUID]:
    """The active task that made each skipped row a duplicate, keyed by identity."""
    if not rows:
        return {}
    keys = {tuple(row[k] for k in _IDENTITY) for row in rows}
    columns = [getattr(ScrapeTask, k) for k in _IDENTITY]
    found = session.execute(
        select(ScrapeTask.id, *columns).where(
            ScrapeTask.status.in_(ACTIVE_STATUSES), tuple_(*columns).in_(list(keys))
        )
    )
    return {tuple(row[1:]): row[0] for row in found}
