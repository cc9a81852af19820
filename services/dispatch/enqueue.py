"""Enqueue: write ledger rows, idempotently per active (platform, state, county, parcel).

The caller commits, then publishes the returned messages (``broker_client.enqueue_and_publish``);
rows written but never published are picked up by the periodic re-publisher.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Uuid, column, select, text
from sqlalchemy.orm import Session

from db.models import ACTIVE_STATUSES_SQL, Platform, ScrapeTask
from services.dispatch.envelopes import ScrapeMessage, build_scrape_message
from services.dispatch.outcome_metrics import note_tasks_enqueued
from services.errors import InvalidInput
from services.parcel_identity import normalize_county, normalize_state, parcel_key
from services.queues import DEFAULT_PRIORITY, PRIORITIES
from settings import get_settings

MAX_BATCH = 10_000
_IDENTITY = ("platform", "state", "county", "parcel_key")
# The columns enqueue writes, each sent as one array: the server unnests them into rows, so a
# batch is one statement with ten parameters, not ten per row for the client to process.
# Strings travel as text[]: the insert's own cast to varchar(n) still refuses a value too long
# (an explicit cast to varchar(n)[] would cut it).
_COLUMN_ARRAYS = {
    "id": "uuid[]",
    "platform": "text[]",
    "state": "text[]",
    "county": "text[]",
    "parcel_id": "text[]",
    "parcel_key": "text[]",
    "url": "text[]",
    "priority": "smallint[]",
    "max_retries": "smallint[]",
    "request_id": "text[]",
}
# Rows leave unnest in array order, so of two duplicates in one batch the first is inserted
# and the second meets it in the partial unique index (uq_scrape_tasks_active_parcel).
_INSERT_ROWS = text(
    f"INSERT INTO {ScrapeTask.__tablename__} ({', '.join(_COLUMN_ARRAYS)})"
    f" SELECT * FROM unnest({', '.join(f'CAST(:{n} AS {t})' for n, t in _COLUMN_ARRAYS.items())})"
    f" ON CONFLICT ({', '.join(_IDENTITY)}) WHERE status IN ({ACTIVE_STATUSES_SQL}) DO NOTHING"
    " RETURNING id"
).columns(column("id", Uuid))
# The keys are joined to the active rows; a row-value IN list became one filter of N
# alternatives tested against every active row of the county (time: county size x batch).
_FIND_ACTIVE = text(
    f"SELECT t.id, {', '.join(_IDENTITY)} FROM {ScrapeTask.__tablename__} t"
    f" JOIN unnest({', '.join(f'CAST(:{n} AS text[])' for n in _IDENTITY)})"
    f" AS k({', '.join(_IDENTITY)}) USING ({', '.join(_IDENTITY)})"
    f" WHERE t.status IN ({ACTIVE_STATUSES_SQL})"
).columns(column("id", Uuid))


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
    note_tasks_enqueued(session, (row["platform"] for row in rows if row["id"] in inserted))
    report = EnqueueReport()
    skipped = [row for row in rows if row["id"] not in inserted]
    existing = _active_ids(session, skipped)
    for row in rows:
        index = row["_index"]
        if row["id"] in inserted:
            outcomes[index] = ItemOutcome(index, ItemStatus.ENQUEUED, task_id=row["id"])
            report.messages.append(_scrape_message(row))
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


def _insert_rows(session: Session, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """One INSERT ... ON CONFLICT DO NOTHING; returns the ids of the rows actually inserted."""
    if not rows:
        return set()
    arrays = {name: [row[name] for row in rows] for name in _COLUMN_ARRAYS}
    arrays["id"] = [str(task_id) for task_id in arrays["id"]]
    return set(session.scalars(_INSERT_ROWS, arrays))


def _scrape_message(row: dict[str, Any]) -> ScrapeMessage:
    return build_scrape_message(
        row["id"],
        platform=row["platform"],
        state=row["state"],
        county=row["county"],
        parcel_id=row["parcel_id"],
        url=row["url"],
        priority=row["priority"],
    )


def _active_ids(session: Session, rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], uuid.UUID]:
    """The active task that made each skipped row a duplicate, keyed by identity."""
    if not rows:
        return {}
    keys = {tuple(row[k] for k in _IDENTITY) for row in rows}
    arrays = {name: [key[n] for key in keys] for n, name in enumerate(_IDENTITY)}
    return {tuple(row[1:]): row[0] for row in session.execute(_FIND_ACTIVE, arrays)}
