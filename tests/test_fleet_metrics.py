"""Each fleet metric moves as the system works: enqueue, HTTP lease + complete, a stale
lease token, a Celery scrape, failures to retry and to dead, cancel, ingest.

The figures are written by whichever process did the work (the API here, Celery prefork
children in real workers) and read back from the API's ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.queues import INGEST_QUEUE, scrape_queue_names
from tasks.dispatch_jobs import reap_leases
from tests.celery_workers import WorkerProcess
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    clean_dispatch_queues,
    enqueue,
    expire_leases,
    lease,
    platform_policy,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
Labels = dict[str, str]


def value(metrics_text: str, name: str, labels: Labels | None = None) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = (labels or {}).items()
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name and wanted <= sample.labels.items()
    )


def finished(metrics_text: str, outcome: str, platform: str = "demo") -> float:
    labels = {"platform": platform, "outcome": outcome}
    return value(metrics_text, "gateway_tasks_finished_total", labels)


def test_enqueue_lease_and_complete_move_the_counters_histograms_and_ledger_gauges(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    def metrics() -> str:
        return str(api_client.get("/metrics").text)

    before = metrics()
    assert value(before, "gateway_oldest_queued_age_seconds", {"platform": "demo"}) == 0
    enqueue(api_client, admin_headers, ["FM-1", "FM-2"], priority=2)
    queued = metrics()
    assert value(queued, "gateway_tasks_enqueued_total", {"platform": "demo"}) == 2
    assert value(queued, "gateway_ledger_tasks", {"term": "enqueued"}) == 2
    assert value(queued, "gateway_ledger_tasks", {"term": "active"}) == 2
    wait_for(
        lambda: value(metrics(), "gateway_oldest_queued_age_seconds", {"priority": "2"}) > 0,
        timeout_s=5,
        what="the oldest queued task to age",
    )

    tasks = lease(api_client, worker_headers, capacity=2)
    first, second = tasks
    completed = api_client.post(
        f"/internal/tasks/{first['task_id']}/complete",
        json={"lease_token": first["lease_token"]},
        headers=worker_headers,
    )
    assert completed.status_code == 200, completed.text
    stale = api_client.post(
        f"/internal/tasks/{second['task_id']}/complete",
        json={"lease_token": second["lease_token"] + 1000},
        headers=worker_headers,
    )
    assert stale.status_code == 409, stale.text
    after = metrics()

    assert finished(after, "succeeded") == 1
    demo = {"platform": "demo"}
    assert value(after, "gateway_task_wait_seconds_count", demo) == 1
    assert value(after, "gateway_task_run_seconds_count", demo) == 1
    assert value(after, "gateway_task_run_seconds_bucket", {**demo, "le": "+Inf"}) == 1
    fenced = {"platform": "demo", "action": "complete"}
    assert value(after, "gateway_fenced_off_total", fenced) == 1
    assert value(after, "gateway_ledger_tasks", {"term": "succeeded"}) == 1
    assert value(after, "gateway_oldest_queued_age_seconds", demo) == 0


def test_failures_count_as_retried_then_dead_and_expired_leases_are_counted(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    def metrics() -> str:
        return str(api_client.get("/metrics").text)

    with platform_policy("demo", max_retries=1, backoff_base_s=0):
        (task_id,) = enqueue(api_client, admin_headers, ["FM-DEAD"])
        (held,) = lease(api_client, worker_headers)
        body = {"reason": "platform_down", "retry_suggested": True}
        response = api_client.post(
            f"/internal/tasks/{held['task_id']}/fail", json=body, headers=worker_headers
        )
        assert response.json()["should_retry"] is True, response.text
        assert finished(metrics(), "retried") == 1

        from tasks.dispatch_jobs import republish_due_retries

        republish_due_retries()
        (again,) = lease(api_client, worker_headers)
        assert again["task_id"] == str(task_id)
        expire_leases()
        assert reap_leases()["expired"] == 1
    after = metrics()

    assert finished(after, "retried") == 1
    assert finished(after, "dead") == 1
    expired = {"platform": "demo", "reason": "lease_expired"}
    assert value(after, "gateway_leases_expired_total", expired) == 1
    assert value(after, "gateway_task_run_seconds_count", {"platform": "demo"}) == 2


def test_a_cancelled_task_is_counted_once_and_a_rolled_back_failure_not_at_all(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    (task_id,) = enqueue(api_client, admin_headers, ["FM-CANCEL"])
    (held,) = lease(api_client, worker_headers)
    other = {**worker_headers, "X-Worker-ID": "someone-else"}
    refused = api_client.post(
        f"/internal/tasks/{held['task_id']}/fail", json={"reason": "timeout"}, headers=other
    )
    assert refused.status_code in (403, 409), refused.text
    cancelled = api_client.post(f"/admin/tasks/{task_id}/cancel", headers=admin_headers)
    assert cancelled.status_code == 200, cancelled.text
    after = str(api_client.get("/metrics").text)

    assert finished(after, "cancelled") == 1
    assert finished(after, "retried") + finished(after, "dead") == 0
    # The cancelled attempt was running: its wait counts, its run is no success or failure.
    assert value(after, "gateway_task_wait_seconds_count", {"platform": "demo"}) == 1
    assert value(after, "gateway_task_run_seconds_count", {"platform": "demo"}) == 0


def test_a_celery_scrape_and_its_ingest_are_counted_from_the_worker_children(
    api_client: TestClient,
    admin_headers: dict[str, str],
    celery_worker_factory: Callable[..., WorkerProcess],
) -> None:
    def metrics() -> str:
        return str(api_client.get("/metrics").text)

    with platform_policy("demo", max_retries=0):
        celery_worker_factory(scrape_queue_names(["demo"]))
        celery_worker_factory([INGEST_QUEUE])
        enqueue(api_client, admin_headers, ["FM-CELERY-1", "FAIL-FM-2"])

        wait_for(
            lambda: finished(metrics(), "succeeded") == 1 and finished(metrics(), "dead") == 1,
            timeout_s=60,
            what="the Celery scrape to succeed and the failing one to die",
        )
    after = metrics()

    assert value(after, "gateway_task_wait_seconds_count", {"platform": "demo"}) == 2
    assert value(after, "gateway_task_run_seconds_count", {"platform": "demo"}) == 2
    assert value(after, "gateway_ingest_chunk_size_count") >= 1
    assert value(after, "gateway_ingest_chunk_size_sum") == 1
    assert value(after, "gateway_ingest_rows_total", {"outcome": "inserted"}) == 1


def test_a_refused_result_item_is_counted_as_rejected(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    before = str(api_client.get("/metrics").text)
    bad = {"parcel_id": "", "platform": "demo", "state": "FL", "county": "dixie", "data": {}}
    response = api_client.post("/internal/results", json=[bad], headers=worker_headers)
    assert response.status_code in (200, 202), response.text
    after = str(api_client.get("/metrics").text)

    assert value(after, "gateway_ingest_rows_total", {"outcome": "rejected"}) > value(
        before, "gateway_ingest_rows_total", {"outcome": "rejected"}
    )


def test_public_calls_by_tier_readiness_and_the_ingest_backlog_are_reported(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    def metrics() -> str:
        return str(api_client.get("/metrics").text)

    assert value(metrics(), "gateway_broker_queue_messages", {"queue": "ingest"}) == 0
    assert api_client.get("/v1/search", params={"state": "FL"}).status_code == 200
    result = {
        "task_id": None, "parcel_id": "FM-BACKLOG", "platform": "demo", "state": "FL",
        "county": "dixie", "data": {"owner": "DOE JANE"},
        "scraped_at": "2026-11-01T12:00:00+00:00",
    }  # fmt: skip
    accepted = api_client.post(
        "/internal/results",
        json=[result],
        headers={**worker_headers, "Prefer": "respond-async"},
    )
    assert accepted.status_code == 202, accepted.text
    after = metrics()

    assert value(after, "gateway_public_requests_total", {"tier": "anonymous"}) >= 1
    assert value(after, "gateway_broker_queue_messages", {"queue": "ingest"}) == 1
    checks = [
        sample
        for family in text_string_to_metric_families(after)
        for sample in family.samples
        if sample.name == "gateway_readiness_check"
    ]
    assert len(checks) == 3 and all(sample.value == 1 for sample in checks), checks


def test_every_enabled_platform_has_its_outcome_series_at_zero_before_any_work(
    api_client: TestClient,
) -> None:
    families = {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(str(api_client.get("/metrics").text))
        for sample in family.samples
    }

    # A counter that appeared at 1 would lose that first task from every rate.
    for outcome in ("succeeded", "retried", "dead", "cancelled"):
        labels = (("outcome", outcome), ("platform", "qpublic"))
        assert ("gateway_tasks_finished_total", labels) in families, outcome
    assert ("gateway_task_wait_seconds_count", (("platform", "qpublic"),)) in families
    assert ("gateway_leases_expired_total", (("platform", "demo"), ("reason", "worker_stale"))) in (
        families
    )


def test_figures_noted_in_savepoints_count_once_at_the_commit_and_never_when_rolled_back(
    api_client: TestClient,
) -> None:
    from db.session import session_scope
    from services.dispatch.outcome_metrics import (
        FinishedAttempt,
        TaskOutcome,
        note_attempts_finished,
    )

    def note(session: Any, outcome: TaskOutcome) -> None:
        note_attempts_finished(session, [FinishedAttempt("demo", outcome)])

    with session_scope() as session:
        note(session, TaskOutcome.SUCCEEDED)
        with session.begin_nested():  # released: counted with the outer commit
            note(session, TaskOutcome.SUCCEEDED)
        assert finished(str(api_client.get("/metrics").text), "succeeded") == 0  # not yet
        try:
            with session.begin_nested():  # rolled back: only its own figures go
                note(session, TaskOutcome.DEAD)
                raise RuntimeError("the savepoint fails")
        except RuntimeError:
            pass

    after = str(api_client.get("/metrics").text)
    assert finished(after, "succeeded") == 2
    assert finished(after, "dead") == 0
