"""Import from a running original gateway: its Redis task lists and its ``parcels`` table.

The original kept pending tasks in Redis lists ``queue:{platform}:p{1..4}`` (LPUSHed, popped
from the right) and in-flight ones in ``processing:{worker_id}``; an item is the task JSON
``{task_id, type, platform, target{parcel_id, state, county, url}, priority, created_at}``
(the spec's flat ``{platform, state, county, parcel_id, url}`` is read too). Both kinds are
enqueued here through the normal enqueue (so dedup applies), in the original's order; the
lists are only read, never changed. Each enqueued task carries ``LEGACY_REQUEST_ID``, so a
second run skips what an earlier one imported even after it finished.

Parcels (``id, parcel_id, platform, state, county, data, scraped_at[, created_at]``) go
through the normal ingest: a second run finds every scrape already there and changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from db.models import ScrapeTask
from services.dispatch.enqueue import EnqueueReport, EnqueueRequest, ItemStatus
from services.errors import InvalidInput
from services.ingest import IngestOutcome, ingest_result_items
from services.parcel_identity import normalize_county, normalize_state, parcel_key

LEGACY_REQUEST_ID = "legacy-import"
DEFAULT_PRIORITY = 3
MAX_PROBLEMS = 50  # problems kept for the report; the counts cover all of them
_QUEUE_KEY = re.compile(r"^queue:(?P<platform>.+):p(?P<priority>[1-4])$")
_PROCESSING_KEY = re.compile(r"^processing:(?P<worker>.+)$")
_REQUIRED_PARCEL_COLUMNS = {"id", "parcel_id", "platform", "state", "county", "data"}
_OLDEST_PLAUSIBLE = datetime(1900, 1, 1, tzinfo=UTC)  # Go's zero time means "not given"

Identity = tuple[str, str, str, str]  # platform, state, county, parcel_key
Enqueue = Callable[[Sequence[EnqueueRequest]], EnqueueReport]


@dataclass(frozen=True)
class LegacyList:
    key: str
    platform: str | None  # from the key: queue lists only
    priority: int | None  # from the key: queue lists only
    length: int

    @property
    def is_processing(self) -> bool:
        return self.platform is None


@dataclass
class TaskImportCounts:
    queued: int = 0
    in_processing: int = 0
    enqueued: int = 0
    already_imported: int = 0
    already_active: int = 0
    invalid: int = 0
    problems: list[str] = field(default_factory=list)

    def add_problem(self, problem: str) -> None:
        self.invalid += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)


@dataclass
class ParcelImportCounts:
    found: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, outcome: IngestOutcome, rows: Sequence[dict[str, Any]]) -> None:
        self.inserted += outcome.inserted
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged
        self.stale += outcome.stale
        self.rejected += outcome.rejected
        for error in outcome.errors[: max(MAX_PROBLEMS - len(self.problems), 0)]:
            self.problems.append(f"parcels row id {rows[error.index]['id']}: {error.reason}")


# --- tasks -----------------------------------------------------------------------------------


def find_legacy_lists(client: redis.Redis) -> list[LegacyList]:
    """The original's queue and processing lists, queues first (platform, then priority)."""
    found: list[LegacyList] = []
    for pattern in ("queue:*", "processing:*"):
        for raw_key in client.scan_iter(match=pattern, count=1000):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            if client.type(key) not in (b"list", "list"):
                continue  # the spec's processing:{task_id} strings, sorted-set queues
            queue = _QUEUE_KEY.match(key)
            if queue is None and not _PROCESSING_KEY.match(key):
                continue
            platform = queue["platform"] if queue else None
            priority = int(queue["priority"]) if queue else None
            found.append(LegacyList(key, platform, priority, int(client.llen(key))))
    return sorted(found, key=lambda item: (item.is_processing, item.platform or "", item.key))


def read_legacy_list(client: redis.Redis, source: LegacyList, *, chunk: int) -> Iterator[bytes]:
    """Items oldest first: the original pushed on the left and popped from the right."""
    end = source.length - 1
    while end >= 0:
        start = max(end - chunk + 1, 0)
        items: list[bytes] = client.lrange(source.key, start, end)  # type: ignore[assignment]
        yield from reversed(items)
        end = start - 1


def legacy_enqueue_request(raw: bytes | str, source: LegacyList) -> EnqueueRequest:
    """One list item as an enqueue request; InvalidInput names what is wrong with it."""
    try:
        task = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"not JSON ({exc})") from exc
    if not isinstance(task, dict):
        raise InvalidInput("not a JSON object")
    nested = task.get("target")
    target: dict[str, Any] = nested if isinstance(nested, dict) else task

    def text_field(name: str, value: object) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"{name}: missing")
        return value.strip()

    priority = source.priority or task.get("priority") or DEFAULT_PRIORITY
    url = target.get("url")
    return EnqueueRequest(
        platform=text_field("platform", task.get("platform") or source.platform),
        state=text_field("state", target.get("state")),
        county=text_field("county", target.get("county")),
        parcel_id=text_field("parcel_id", target.get("parcel_id")),
        url=url.strip() or None if isinstance(url, str) else None,
        priority=priority if isinstance(priority, int) else DEFAULT_PRIORITY,
    )


def request_identity(request: EnqueueRequest) -> Identity:
    return (
        request.platform.strip().lower(),
        normalize_state(request.state),
        normalize_county(request.county),
        parcel_key(request.parcel_id),
    )


def imported_task_identities(session: Session) -> set[Identity]:
    """Tasks an earlier import enqueued, whatever became of them since."""
    rows = session.execute(
        select(ScrapeTask.platform, ScrapeTask.state, ScrapeTask.county, ScrapeTask.parcel_key)
        .where(ScrapeTask.request_id == LEGACY_REQUEST_ID)
    )  # fmt: skip
    return {(r[0], r[1], r[2], r[3]) for r in rows}


def import_legacy_tasks(
    client: redis.Redis,
    sources: Sequence[LegacyList],
    *,
    already_imported: set[Identity],
    enqueue: Enqueue,
    batch_size: int,
    on_progress: Callable[[int], None] = lambda _: None,
) -> TaskImportCounts:
    """Enqueue every task of ``sources`` not imported before; ``enqueue`` commits and
    publishes one batch (tagged ``LEGACY_REQUEST_ID``)."""
    counts = TaskImportCounts()
    batch: list[tuple[EnqueueRequest, Identity]] = []
    for source in sources:
        for index, raw in enumerate(read_legacy_list(client, source, chunk=batch_size)):
            if source.is_processing:
                counts.in_processing += 1
            else:
                counts.queued += 1
            try:
                request = legacy_enqueue_request(raw, source)
                identity = request_identity(request)
            except InvalidInput as exc:
                counts.add_problem(f"{source.key}[{index}]: {exc.message}")
                on_progress(1)
                continue
            if identity in already_imported:
                counts.already_imported += 1
                on_progress(1)
                continue
            batch.append((request, identity))
            if len(batch) >= batch_size:
                _enqueue_batch(batch, counts, already_imported, enqueue, on_progress)
                batch = []
    _enqueue_batch(batch, counts, already_imported, enqueue, on_progress)
    return counts


def _enqueue_batch(
    batch: list[tuple[EnqueueRequest, Identity]],
    counts: TaskImportCounts,
    already_imported: set[Identity],
    enqueue: Enqueue,
    on_progress: Callable[[int], None],
) -> None:
    if not batch:
        return
    report = enqueue([request for request, _ in batch])
    for outcome in report.outcomes:
        request, identity = batch[outcome.index]
        if outcome.status is ItemStatus.ENQUEUED:
            counts.enqueued += 1
            already_imported.add(identity)
        elif outcome.status is ItemStatus.ALREADY_ACTIVE:
            counts.already_active += 1
        else:
            counts.add_problem(f"{request.platform} {request.parcel_id}: {outcome.error}")
    on_progress(len(batch))


# --- parcels ---------------------------------------------------------------------------------


def check_legacy_parcels_table(legacy: Connection) -> list[str]:
    """The columns of the original's ``parcels`` table; InvalidInput if it is another layout."""
    columns = list(
        legacy.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'parcels' AND table_schema = current_schema()"
            )
        ).scalars()
    )
    missing = _REQUIRED_PARCEL_COLUMNS - set(columns)
    if missing:
        raise InvalidInput(
            f"the legacy database's parcels table is not the original gateway's layout "
            f"(missing {', '.join(sorted(missing))})"
        )
    return columns


def count_legacy_parcels(legacy: Connection) -> int:
    return int(legacy.execute(text("SELECT count(*) FROM parcels")).scalar_one())


def read_legacy_parcels(legacy: Connection, *, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Rows in id order, ``batch_size`` at a time (keyset pages: no long-held cursor)."""
    columns = check_legacy_parcels_table(legacy)
    wanted = [c for c in ("scraped_at", "created_at") if c in columns]
    select_list = ", ".join(["id", "parcel_id", "platform", "state", "county", "data", *wanted])
    statement = text(f"SELECT {select_list} FROM parcels WHERE id > :after ORDER BY id LIMIT :n")
    after = -(2**31)  # below any serial id
    while True:
        page = legacy.execute(statement, {"after": after, "n": batch_size})
        rows = [dict(row) for row in page.mappings()]
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


def legacy_result_item(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the original's ``parcels`` as a result item (the normal ingest validates it)."""
    data = row["data"]
    if isinstance(data, str):  # a JSON (not JSONB) column read as text; if not JSON, the
        with contextlib.suppress(ValueError):  # ingest rejects it, naming the row
            data = json.loads(data)
    return {
        "task_id": None,
        "parcel_id": row["parcel_id"],
        "platform": row["platform"],
        "state": row["state"],
        "county": row["county"],
        "data": data,
        "scraped_at": _scraped_at(row),
        "parse_duration_ms": None,
    }


def _scraped_at(row: dict[str, Any]) -> str | None:
    for name in ("scraped_at", "created_at"):
        stamp = row.get(name)
        if isinstance(stamp, datetime):
            aware = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            if aware >= _OLDEST_PLAUSIBLE:
                return aware.isoformat()
    return None


def ingest_legacy_parcels(
    session: Session, rows: Sequence[dict[str, Any]], counts: ParcelImportCounts
) -> None:
    """Ingest one page of legacy rows; flushes, the caller commits."""
    items = [legacy_result_item(row) for row in rows]
    counts.found += len(rows)
    counts.add(ingest_result_items(session, items), rows)
