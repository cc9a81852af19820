"""The Celery-side claim: which deliveries run, which are duplicates, which take over."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.dispatch.enqueue import EnqueueRequest, enqueue_tasks
from services.dispatch.running import claim_run, fail_run


def queued_task(session: Session, parcel_id: str = "RUN-1", *, max_retries: int = 3) -> uuid.UUID:
    [message] = enqueue_tasks(session, [EnqueueRequest("demo", "FL", "dixie", parcel_id)]).messages
    session.execute(
        text("UPDATE scrape_tasks SET max_retries = :n WHERE id = :id"),
        {"n": max_retries, "id": message.task_id},
    )
    return message.task_id


def test_only_the_first_delivery_of_a_queued_task_runs(db_session: Session) -> None:
    task_id = queued_task(db_session)
    now = datetime.now(UTC)

    first = claim_run(db_session, task_id, worker_name="a@h", run_lease_s=60, now=now)
    again = claim_run(db_session, task_id, worker_name="a@h", run_lease_s=60, now=now)
    elsewhere = claim_run(
        db_session, task_id, worker_name="b@h", run_lease_s=60, is_redelivery=True, now=now
    )

    assert first is not None and first.attempt == 1 and first.status == "running"
    assert again is None and elsewhere is None


def test_a_redelivery_to_the_node_that_lost_the_run_takes_it_over(db_session: Session) -> None:
    task_id = queued_task(db_session)
    now = datetime.now(UTC)
    first = claim_run(db_session, task_id, worker_name="a@h", run_lease_s=60, now=now)
    assert first is not None
    first_token = first.lease_token

    second = claim_run(
        db_session, task_id, worker_name="a@h", run_lease_s=60, is_redelivery=True, now=now
    )

    assert second is not None and second.attempt == 2
    assert second.lease_token != first_token
    assert [e["reason"] for e in second.error_history] == ["worker_lost"]
    assert first_token is not None and second.lease_token is not None
    for token, holds_the_run in ((first_token, False), (second.lease_token, True)):
        outcome = fail_run(
            db_session, task_id, lease_token=token, reason="timeout", message="late",
            is_retryable=True, now=now,
        )  # fmt: skip
        assert (outcome is not None) == holds_the_run


def test_any_delivery_takes_over_a_run_whose_lease_expired(db_session: Session) -> None:
    task_id = queued_task(db_session)
    now = datetime.now(UTC)
    claim_run(db_session, task_id, worker_name="a@h", run_lease_s=60, now=now)

    later = now + timedelta(seconds=61)
    taken = claim_run(db_session, task_id, worker_name="b@h", run_lease_s=60, now=later)

    assert taken is not None and taken.leased_by == "b@h" and taken.attempt == 2


def test_a_lost_run_on_the_last_attempt_is_dead_not_run(db_session: Session) -> None:
    task_id = queued_task(db_session, max_retries=0)
    now = datetime.now(UTC)
    claim_run(db_session, task_id, worker_name="a@h", run_lease_s=60, now=now)

    taken = claim_run(
        db_session, task_id, worker_name="a@h", run_lease_s=60, is_redelivery=True, now=now
    )

    assert taken is None
    status, reason = db_session.execute(
        text("SELECT status, last_error_reason FROM scrape_tasks WHERE id = :id"), {"id": task_id}
    ).one()
    assert (status, reason) == ("dead", "worker_lost")


def test_a_run_held_by_a_node_found_dead_is_taken_over_by_another(db_session: Session) -> None:
    task_id = queued_task(db_session)
    now = datetime.now(UTC)
    claim_run(db_session, task_id, worker_name="a@h", run_lease_s=600, now=now)

    alive = claim_run(
        db_session, task_id, worker_name="b@h", run_lease_s=600, is_redelivery=True, now=now
    )
    taken = claim_run(
        db_session,
        task_id,
        worker_name="b@h",
        run_lease_s=600,
        is_redelivery=True,
        lost_holders={"a@h"},
        now=now,
    )

    assert alive is None
    assert taken is not None and taken.leased_by == "b@h" and taken.attempt == 2
