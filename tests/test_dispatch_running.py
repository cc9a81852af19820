"""The Celery-side claim: which deliveries run, which are duplicates, which take over; run
lease renewals and runs that Celery terminates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.dispatch.enqueue import EnqueueRequest, enqueue_tasks
from services.dispatch.failures import FailureOutcome
from services.dispatch.reaper import reap_expired_leases
from services.dispatch.running import (
    cancel_revoked_run,
    claim_run,
    fail_run,
    fail_terminated_run,
    renew_run_leases,
)


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


def running_task(session: Session, parcel_id: str, *, worker_name: str, now: datetime) -> uuid.UUID:
    task_id = queued_task(session, parcel_id)
    assert claim_run(session, task_id, worker_name=worker_name, run_lease_s=60, now=now)
    return task_id


def lease_expiry(session: Session, task_id: uuid.UUID) -> datetime:
    expiry: datetime = session.scalar(
        text("SELECT lease_expires_at FROM scrape_tasks WHERE id = :id"), {"id": task_id}
    )
    return expiry


def test_a_renewal_extends_only_the_named_runs_still_running_on_that_node(
    db_session: Session,
) -> None:
    now = datetime.now(UTC)
    mine = running_task(db_session, "MINE-1", worker_name="a@h", now=now)
    not_named = running_task(db_session, "MINE-2", worker_name="a@h", now=now)
    elsewhere = running_task(db_session, "OTHER-1", worker_name="b@h", now=now)
    waiting = queued_task(db_session, "QUEUED-1")
    later = now + timedelta(seconds=50)

    renewed = renew_run_leases(
        db_session, [mine, elsewhere, waiting], worker_name="a@h", run_lease_s=60, now=later
    )

    assert renewed == 1
    assert lease_expiry(db_session, mine) == later + timedelta(seconds=60)
    for task_id in (not_named, elsewhere):
        assert lease_expiry(db_session, task_id) == now + timedelta(seconds=60)
    assert lease_expiry(db_session, waiting) is None
    assert renew_run_leases(db_session, [], worker_name="a@h", run_lease_s=60, now=later) == 0


def test_a_renewal_does_not_revive_a_run_already_reaped(db_session: Session) -> None:
    now = datetime.now(UTC)
    task_id = running_task(db_session, "REAPED-1", worker_name="a@h", now=now)
    later = now + timedelta(seconds=61)
    assert reap_expired_leases(db_session, now=later) == 1

    renewed = renew_run_leases(db_session, [task_id], worker_name="a@h", run_lease_s=60, now=later)

    assert renewed == 0
    status, expiry = db_session.execute(
        text("SELECT status, lease_expires_at FROM scrape_tasks WHERE id = :id"), {"id": task_id}
    ).one()
    assert (status, expiry) == ("retry_wait", None)


def test_a_run_terminated_by_celery_is_closed_once_and_only_on_its_node(
    db_session: Session,
) -> None:
    now = datetime.now(UTC)
    task_id = running_task(db_session, "CUT-1", worker_name="a@h", now=now)

    def terminate(worker_name: str) -> FailureOutcome | None:
        return fail_terminated_run(
            db_session, task_id, worker_name=worker_name, reason="worker_lost",
            message="broker connection lost", now=now,
        )  # fmt: skip

    assert terminate("b@h") is None
    outcome = terminate("a@h")
    again = terminate("a@h")

    assert outcome is not None and outcome.should_retry and outcome.attempt == 1
    assert again is None
    status, history = db_session.execute(
        text("SELECT status, error_history FROM scrape_tasks WHERE id = :id"), {"id": task_id}
    ).one()
    assert status == "retry_wait"
    assert [(e["reason"], e["worker"]) for e in history] == [("worker_lost", "a@h")]


def test_a_run_revoked_by_an_operator_is_cancelled_and_only_on_its_node(
    db_session: Session,
) -> None:
    now = datetime.now(UTC)
    task_id = running_task(db_session, "REVOKED-1", worker_name="a@h", now=now)

    elsewhere = cancel_revoked_run(db_session, task_id, worker_name="b@h", now=now)
    cancelled = cancel_revoked_run(db_session, task_id, worker_name="a@h", now=now)

    assert elsewhere is None
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancel_revoked_run(db_session, task_id, worker_name="a@h", now=now) is None
