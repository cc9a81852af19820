"""Finishing ledger tasks from ingested results: a result finishes only its own parcel's task."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from db.models import ScrapeTask, TaskStatus
from services.dispatch.completion import TaskResult, mark_tasks_succeeded
from services.ingest import ingest_result_items


def leased_task(session: Session, parcel_id: str, parcel_key: str) -> ScrapeTask:
    task = ScrapeTask(
        platform="qpublic", state="FL", county="dixie", parcel_id=parcel_id,
        parcel_key=parcel_key, status=TaskStatus.LEASED.value,
    )  # fmt: skip
    session.add(task)
    session.commit()
    return task


def result_item(task_id: uuid.UUID, parcel_id: str, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": str(task_id),
        "parcel_id": parcel_id,
        "platform": "qpublic",
        "state": "FL",
        "county": "Dixie",
        "data": {"owner": "SMITH JOHN"},
        "scraped_at": datetime(2026, 11, 1, 12, 0, tzinfo=UTC).isoformat(),
    }
    item.update(overrides)
    return item


def test_a_result_naming_another_parcels_task_leaves_that_task_active(
    db_session: Session,
) -> None:
    mine = leased_task(db_session, "A-1", "A1")
    other = leased_task(db_session, "B-2", "B2")

    # The worker mixed up ids: the result for parcel A-1 carries the task id of B-2.
    ingest_result_items(db_session, [result_item(other.id, "A-1")])
    db_session.commit()
    db_session.refresh(mine)
    db_session.refresh(other)

    assert other.status == TaskStatus.LEASED.value
    assert other.finished_at is None
    assert mine.status == TaskStatus.LEASED.value


def test_a_result_from_another_platform_or_county_does_not_finish_the_task(
    db_session: Session,
) -> None:
    task = leased_task(db_session, "A-1", "A1")
    base = TaskResult(task.id, "qpublic", "FL", "dixie", "A1")

    assert mark_tasks_succeeded(db_session, [base._replace(platform="beacon")]) == 0
    assert mark_tasks_succeeded(db_session, [base._replace(county="levy")]) == 0
    assert mark_tasks_succeeded(db_session, [base._replace(state="GA")]) == 0
    db_session.commit()
    db_session.refresh(task)
    assert task.status == TaskStatus.LEASED.value


def test_a_matching_result_finishes_its_task_once(db_session: Session) -> None:
    task = leased_task(db_session, "A-1", "A1")
    result = TaskResult(task.id, "qpublic", "FL", "dixie", "A1")

    assert mark_tasks_succeeded(db_session, [result, result]) == 1
    assert mark_tasks_succeeded(db_session, [result]) == 0  # a redelivery changes nothing
    db_session.commit()
    db_session.refresh(task)
    assert task.status == TaskStatus.SUCCEEDED.value
    assert task.finished_at is not None
    assert task.lease_expires_at is None


def test_ingested_results_finish_their_own_tasks_in_any_spelling(db_session: Session) -> None:
    first = leased_task(db_session, "A-1", "A1")
    second = leased_task(db_session, "B-2", "B2")

    items = [result_item(first.id, "a 1"), result_item(second.id, "B-2", county="DIXIE")]
    ingest_result_items(db_session, items)
    db_session.commit()
    db_session.refresh(first)
    db_session.refresh(second)

    assert first.status == second.status == TaskStatus.SUCCEEDED.value
