"""A parcel's history: every accepted scrape, newest first, with what changed between them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from services.ingest import FieldChange, find_parcel_id, ingest_result_items, parcel_history

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def scrape(hours: int, data: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": str(uuid.uuid4()),
        "parcel_id": "01-0813-0000-3634-1100",
        "platform": "qpublic",
        "state": "FL",
        "county": "Dixie",
        "data": data,
        "scraped_at": (T0 + timedelta(hours=hours)).isoformat(),
    }
    item.update(overrides)
    return item


def test_history_lists_snapshots_newest_first_with_their_changes(db_session: Session) -> None:
    ingest_result_items(db_session, [scrape(0, {"owner": "A", "total_due": "$10.00"})])
    ingest_result_items(db_session, [scrape(2, {"owner": "B", "total_due": "$10.00"})])
    ingest_result_items(db_session, [scrape(3, {"owner": "B", "sale_date": "1/2/2026"})])
    db_session.commit()

    parcel_id = find_parcel_id(
        db_session, state="florida", county="DIXIE", parcel_id="0108130000363411-00"
    )
    assert parcel_id is not None
    history = parcel_history(db_session, parcel_id)

    assert [entry.scraped_at for entry in history] == [T0 + timedelta(hours=h) for h in (3, 2, 0)]
    assert history[0].changes == [
        FieldChange("sale_date", "added", None, "1/2/2026"),
        FieldChange("total_due", "removed", "$10.00", None),
    ]
    assert history[1].changes == [FieldChange("owner", "changed", "A", "B")]
    assert (history[2].is_first, history[2].changes) == (True, [])


def test_a_late_older_scrape_takes_its_place_in_history(db_session: Session) -> None:
    ingest_result_items(db_session, [scrape(5, {"owner": "NEW"})])
    ingest_result_items(db_session, [scrape(1, {"owner": "OLD"})])  # stale: arrives late
    db_session.commit()

    parcel_id = find_parcel_id(
        db_session, state="FL", county="dixie", parcel_id="01-0813-0000-3634-1100"
    )
    assert parcel_id is not None
    history = parcel_history(db_session, parcel_id)

    assert [entry.data["owner"] for entry in history] == ["NEW", "OLD"]
    assert history[0].changes == [FieldChange("owner", "changed", "OLD", "NEW")]


def test_the_limit_still_diffs_the_oldest_shown_snapshot(db_session: Session) -> None:
    for hour in range(4):
        ingest_result_items(db_session, [scrape(hour, {"n": hour})])
    db_session.commit()
    parcel_id = find_parcel_id(
        db_session, state="FL", county="dixie", parcel_id="01-0813-0000-3634-1100"
    )
    assert parcel_id is not None

    history = parcel_history(db_session, parcel_id, limit=2)

    assert [entry.data["n"] for entry in history] == [3, 2]
    assert history[1].changes == [FieldChange("n", "changed", 1, 2)]
    assert not history[1].is_first


def test_an_unknown_parcel_has_no_history(db_session: Session) -> None:
    assert parcel_history(db_session, 424242) == []
    assert find_parcel_id(db_session, state="FL", county="dixie", parcel_id="nope") is None
