"""A parcel's history: its snapshots, newest first, each with what changed since the one before."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Parcel, ParcelSnapshot
from services.parcel_identity import normalize_county, normalize_state, parcel_key

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class FieldChange:
    field: str
    kind: ChangeKind
    before: Any  # None when added
    after: Any  # None when removed


@dataclass(frozen=True)
class HistoryEntry:
    snapshot_id: int
    platform: str
    scraped_at: datetime
    data: dict[str, Any]
    data_hash: str
    raw_html_hash: str | None
    task_id: uuid.UUID | None
    is_first: bool  # the parcel's first known scrape: nothing to compare with
    changes: list[FieldChange] = field(default_factory=list)  # since the previous snapshot


def find_parcel_id(session: Session, *, state: str, county: str, parcel_id: str) -> int | None:
    """The row id of a parcel given as scraped (any spelling of state, county and id)."""
    return session.execute(
        select(Parcel.id).where(
            Parcel.state == normalize_state(state),
            Parcel.county == normalize_county(county),
            Parcel.parcel_key == parcel_key(parcel_id),
        )
    ).scalar_one_or_none()


def parcel_history(session: Session, parcel_id: int, *, limit: int = 100) -> list[HistoryEntry]:
    """Up to ``limit`` snapshots of parcel row ``parcel_id``, newest first; [] if none."""
    snapshots = list(
        session.execute(
            select(ParcelSnapshot)
            .where(ParcelSnapshot.parcel_id == parcel_id)
            .order_by(ParcelSnapshot.scraped_at.desc(), ParcelSnapshot.id.desc())
            .limit(limit + 1)  # one more, to diff the oldest shown against its predecessor
        ).scalars()
    )
    entries = []
    for position, snapshot in enumerate(snapshots[:limit]):
        previous = snapshots[position + 1] if position + 1 < len(snapshots) else None
        entries.append(
            HistoryEntry(
                snapshot_id=snapshot.id,
                platform=snapshot.platform,
                scraped_at=snapshot.scraped_at,
                data=snapshot.data,
                data_hash=snapshot.data_hash,
                raw_html_hash=snapshot.raw_html_hash,
                task_id=snapshot.task_id,
                is_first=previous is None,
                changes=diff_data(previous.data, snapshot.data) if previous else [],
            )
        )
    return entries


def diff_data(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """Top-level fields added, removed or changed, in field-name order."""
    changes = []
    for name in sorted(before.keys() | after.keys()):
        if name not in before:
            changes.append(FieldChange(name, "added", None, after[name]))
        elif name not in after:
            changes.append(FieldChange(name, "removed", before[name], None))
        elif before[name] != after[name]:
            changes.append(FieldChange(name, "changed", before[name], after[name]))
    return changes
