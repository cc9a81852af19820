"""The original gateway's clients work unchanged (reference: original-gateway-contract.md).

Every worker route of §1.4-1.9 driven the way the original's Go and Python clients drove it:
no ``X-Worker-ID``, no ``lease_token``, a bare array of results, a multipart raw file with
only ``file``, a fail without a body, ``capacity`` missing, 0 or 500. Each answer keeps the
original's status code and the original's fields with their types. The public v1 routes of
§1.12 are covered in ``tests/test_v1_original_api.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.dispatch.failures import classify_worker_reason
from services.dispatch.work_requests import parse_capacity
from services.dispatch.worker_identity import Credential, derived_worker_id
from services.ingest import validate_result_items
from services.ingest.result_answers import item_label, prefers_respond_async
from services.queues import INGEST_QUEUE
from settings import ConfigurationError, load_settings
from tests.celery_workers import WorkerProcess
from tests.conftest import WORKER_TOKEN
from tests.dispatch_helpers import clean_dispatch_queues, enqueue, task_row
from tests.test_results_api import ingest_queue_length

ORIGINAL = {"X-Worker-Token": WORKER_TOKEN}  # what the original's clients sent: no X-Worker-ID
SECOND_FLEET = {"X-Worker-Token": "second-worker-token"}
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
WORK_TASK_FIELDS = {"task_id", "type", "platform", "target", "priority", "created_at"}


def original_item(parcel_id: str, **fields: Any) -> dict[str, Any]:
    """A ParcelResult as the original's test suite sent it: no scraped_at."""
    return {
        "task_id": "", "parcel_id": parcel_id, "platform": "qpublic", "state": "FL",
        "county": "Dixie", "data": {"owner": "SMITH JOHN", "total_due": "$1,204.10"},
        "parse_duration_ms": 100, **fields,
    }  # fmt: skip


def is_rfc3339_with_zone(value: object) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


def original_lease(api_client: TestClient, **params: Any) -> dict[str, Any]:
    response = api_client.get(
        "/internal/work", params={"platforms": ["demo", "qpublic"], **params}, headers=ORIGINAL
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# --- plain functions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "capacity"),
    [(None, 10), ("", 10), ("0", 10), ("-3", 10), ("abc", 10), ("1.5", 10), ("7", 7),
     ("+7", 7), ("100", 100), ("101", 100), ("500", 100), ("9" * 5000, 100)],
)  # fmt: skip
def test_capacity_is_read_as_the_original_read_it(raw: str | None, capacity: int) -> None:
    assert parse_capacity(raw) == capacity


def test_an_unnamed_worker_is_one_per_token_and_host_and_stays_within_its_token() -> None:
    fleet = Credential(key="config:aaaa", name="fleet", worker_ids=None)
    other = Credential(key="config:bbbb", name="other", worker_ids=None)
    exact = Credential(key="db:1", name="tlw_x", worker_ids="scraper-7")
    prefixed = Credential(key="db:2", name="tlw_y", worker_ids="fleet-a-*")

    here = derived_worker_id(fleet, "10.0.0.5")

    assert here.startswith("anon-") and here == derived_worker_id(fleet, "10.0.0.5")
    assert here != derived_worker_id(fleet, "10.0.0.6")
    assert here != derived_worker_id(other, "10.0.0.5")
    assert derived_worker_id(exact, "10.0.0.5") == "scraper-7"
    assert derived_worker_id(prefixed, "10.0.0.5").startswith("fleet-a-anon-")
    assert prefixed.may_use(derived_worker_id(prefixed, "10.0.0.5"))


@pytest.mark.parametrize(
    ("reason", "message", "recorded"),
    [(None, "", ("unknown", "")), ("  ", "x", ("unknown", "x")),
     ("Timeout", "slow", ("timeout", "slow")),
     ("captcha wall", "page 2", ("other", "captcha wall: page 2")),
     ("lease_expired", "", ("other", "lease_expired"))],
)  # fmt: skip
def test_any_fail_reason_is_recorded_and_its_text_kept(
    reason: str | None, message: str, recorded: tuple[str, str]
) -> None:
    assert classify_worker_reason(reason, message) == recorded


@pytest.mark.parametrize(
    ("headers", "is_async"),
    [([], False), (["respond-async"], True), (["RESPOND-ASYNC"], True),
     (["handling=lenient, respond-async; foo=1"], True), (["wait=5", "respond-async"], True),
     (["return=minimal"], False), (["respond-asynchronously"], False)],
)  # fmt: skip
def test_respond_async_is_found_among_any_preferences(headers: list[str], is_async: bool) -> None:
    assert prefers_respond_async(headers) is is_async


def test_items_from_go_clients_mean_now_and_no_task() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    items, errors = validate_result_items(
        [original_item("A-1"), original_item("A-2", scraped_at=GO_ZERO_TIME),
         original_item("A-3", scraped_at=None, task_id=None),
         original_item("A-4", scraped_at="0001-01-02T00:00:00Z")],
        now=now,
    )  # fmt: skip

    assert [(item.scraped_at, item.task_id) for item in items] == [(now, None)] * 3
    assert [error.index for error in errors] == [3] and "before 1990" in errors[0].reason


def test_errors_name_an_item_by_its_text_parcel_id_or_its_index() -> None:
    assert item_label({"parcel_id": " 12-34 "}, 3) == "12-34"
    assert item_label({"parcel_id": 1234}, 3) == "item 3"
    assert item_label({"parcel_id": "\ud800"}, 4) == "item 4"
    assert item_label("not an object", 5) == "item 5"


def test_a_sync_wait_longer_than_the_longest_wait_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_RESULTS_MAX_WAIT_S", "5")
    monkeypatch.setenv("GATEWAY_RESULTS_SYNC_WAIT_S", "6")
    with pytest.raises(ConfigurationError, match="GATEWAY_RESULTS_SYNC_WAIT_S"):
        load_settings()


# --- §1.4 GET /internal/work -------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.usefixtures(clean_dispatch_queues.__name__)
def test_work_without_a_worker_id_or_capacity_leases_ten_in_the_original_shape(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    enqueue(api_client, admin_headers, [f"W-{n}" for n in range(125)])

    first = original_lease(api_client)
    many = original_lease(api_client, capacity="500")
    zero = original_lease(api_client, capacity="0")
    junk = original_lease(api_client, capacity="abc")

    assert [len(a["tasks"]) for a in (first, many, zero, junk)] == [10, 100, 10, 5]
    task = first["tasks"][0]
    assert set(task) >= WORK_TASK_FIELDS and task["proxy"] is None
    assert isinstance(task["task_id"], str) and uuid.UUID(task["task_id"])
    assert (task["type"], task["platform"]) == ("parcel", "demo")
    assert {"parcel_id", "state", "county"} <= set(task["target"])
    assert all(isinstance(task["target"][k], str) for k in ("parcel_id", "state", "county"))
    assert isinstance(task["priority"], int) and is_rfc3339_with_zone(task["created_at"])
    assert isinstance(first["retry_after"], int)
    empty = original_lease(api_client, capacity="-1")
    assert empty["tasks"] == [] and empty["retry_after"] > 0


# --- §1.6 complete, §1.7 fail --------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.usefixtures(clean_dispatch_queues.__name__)
def test_complete_without_body_or_worker_id_answers_success_and_twice_is_harmless(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    enqueue(api_client, admin_headers, ["C-1", "C-2", "C-3"])
    first, second, third = (t["task_id"] for t in original_lease(api_client)["tasks"])

    bare = api_client.post(f"/internal/tasks/{first}/complete", headers=ORIGINAL)
    again = api_client.post(f"/internal/tasks/{first}/complete", headers=ORIGINAL)
    empty_json = api_client.post(
        f"/internal/tasks/{second}/complete",
        content=b"",
        headers={**ORIGINAL, "Content-Type": "application/json"},
    )
    by_another_fleet = api_client.post(f"/internal/tasks/{third}/complete", headers=SECOND_FLEET)
    garbled = api_client.post(
        f"/internal/tasks/{third}/complete",
        content=b"not json",
        headers={**ORIGINAL, "Content-Type": "application/json"},
    )

    for answer in (bare, again, empty_json, garbled):
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True
    assert again.json()["already_completed"] is True
    # Only the identity holding the lease may complete it without a lease token.
    assert by_another_fleet.status_code == 409
    assert task_row(db_session, uuid.UUID(third))["status"] == "succeeded"


@pytest.mark.broker
@pytest.mark.usefixtures(clean_dispatch_queues.__name__)
def test_batch_complete_answers_success(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    enqueue(api_client, admin_headers, ["B-1", "B-2"])
    ids = [t["task_id"] for t in original_lease(api_client)["tasks"]]

    done = api_client.post(
        "/internal/tasks/complete", json={"tasks": [{"task_id": i} for i in ids]}, headers=ORIGINAL
    )
    unknown = api_client.post(
        "/internal/tasks/complete",
        json={"tasks": [{"task_id": str(uuid.uuid4())}]},
        headers=ORIGINAL,
    )

    assert done.status_code == 200 and done.json()["success"] is True
    assert sorted(done.json()["completed"]) == sorted(ids)
    assert unknown.status_code == 200 and unknown.json()["success"] is False


@pytest.mark.broker
@pytest.mark.usefixtures(clean_dispatch_queues.__name__)
def test_fail_without_a_body_is_a_retryable_failure_with_reason_unknown(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    enqueue(api_client, admin_headers, ["F-1", "F-2", "F-3"])
    first, second, third = (t["task_id"] for t in original_lease(api_client)["tasks"])

    bare = api_client.post(f"/internal/tasks/{first}/fail", headers=ORIGINAL)
    garbled = api_client.post(
        f"/internal/tasks/{second}/fail",
        content=b"{oops",
        headers={**ORIGINAL, "Content-Type": "application/json"},
    )
    own_words = api_client.post(
        f"/internal/tasks/{third}/fail",
        json={"reason": "captcha wall", "message": "page 2"},
        headers=ORIGINAL,
    )

    for answer in (bare, garbled, own_words):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["status"], body["success"]) == ("reported", True)
        assert (body["should_retry"], body["moved_to_dlq"]) == (True, False)
        assert isinstance(body["retry_after"], int)
    rows = [task_row(db_session, uuid.UUID(t)) for t in (first, second, third)]
    assert [r["last_error_reason"] for r in rows] == ["unknown", "unknown", "other"]
    assert rows[2]["last_error_message"] == "captcha wall: page 2"
    assert all(r["status"] == "retry_wait" for r in rows)


def test_a_fail_body_with_a_field_of_the_wrong_type_is_a_422_naming_it(
    api_client: TestClient,
) -> None:
    response = api_client.post(
        f"/internal/tasks/{uuid.uuid4()}/fail",
        json={"retry_suggested": "perhaps"},
        headers=ORIGINAL,
    )

    assert response.status_code == 422
    assert "body.retry_suggested" in response.json()["error"]["message"]


# --- §1.8 raw files, §1.9 heartbeat -------------------------------------------------------


@pytest.fixture
def raw_storage() -> Iterator[Path]:
    import shutil

    from settings import get_settings

    root = get_settings().raw_storage_path
    shutil.rmtree(root, ignore_errors=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.usefixtures("raw_storage")
def test_a_raw_file_with_only_the_file_field_is_stored_with_the_original_answer(
    api_client: TestClient,
) -> None:
    page = b"<html><body>parcel 12-34</body></html>"

    response = api_client.post(
        "/internal/raw-files", files={"file": ("page.html", page)}, headers=ORIGINAL
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and isinstance(body["path"], str) and body["path"]


def test_a_heartbeat_of_the_original_shape_is_acknowledged(api_client: TestClient) -> None:
    status = {
        "active_tasks": 0, "completed_last_minute": 0, "failed_last_minute": 0,
        "platforms": ["beacon"], "cpu_percent": 10.5, "memory_percent": 20.0,
    }  # fmt: skip

    response = api_client.post("/internal/heartbeat", json=status, headers=ORIGINAL)
    sparse = api_client.post("/internal/heartbeat", json={}, headers=ORIGINAL)

    for answer in (response, sparse):
        assert answer.status_code == 200, answer.text
        assert answer.json()["acknowledged"] is True
        assert isinstance(answer.json()["commands"], list)


def test_worker_routes_still_need_the_token(api_client: TestClient) -> None:
    assert api_client.get("/internal/work").status_code == 401
    assert api_client.post("/internal/results", json=[]).status_code == 401


# --- §1.5 POST /internal/results --------------------------------------------------------


@pytest.fixture
def empty_ingest_queue() -> Iterator[None]:
    ingest_queue_length(purge=True)
    yield
    ingest_queue_length(purge=True)


@pytest.fixture
def ingest_worker(celery_worker_factory: Any) -> WorkerProcess:
    worker: WorkerProcess = celery_worker_factory([INGEST_QUEUE])
    return worker


@pytest.mark.broker
@pytest.mark.usefixtures("ingest_worker", "empty_ingest_queue")
def test_results_as_a_bare_array_answer_200_with_the_original_counts(
    api_client: TestClient, db_session: Session
) -> None:
    body = [
        original_item("12-34-56"),
        original_item("12-34-57", scraped_at=GO_ZERO_TIME),
        original_item("12-34-58", scraped_at="2026-01-18T12:00:00Z"),
        {k: v for k, v in original_item("12-34-59").items() if k != "county"},
        {"parcel_id": 77, "data": {}},
    ]

    response = api_client.post("/internal/results", json=body, headers=ORIGINAL)

    assert response.status_code == 200, response.text
    assert "Preference-Applied" not in response.headers
    answer = response.json()
    assert (answer["inserted"], answer["updated"], answer["failed"]) == (3, 0, 2)
    assert answer["errors"] == ["12-34-59: county: required text", "item 4: state: required text"]
    assert (answer["accepted"], answer["unchanged"], answer["stale"]) == (3, 0, 0)
    db_session.rollback()
    stamps = db_session.execute(text("SELECT scraped_at FROM parcels")).scalars().all()
    recent = [s for s in stamps if s > datetime.now(UTC) - timedelta(hours=1)]
    assert (len(stamps), len(recent)) == (3, 2)  # no stamp and Go's zero time: scraped now

    again = api_client.post("/internal/results", json=body[:3], headers=ORIGINAL).json()
    assert (again["inserted"], again["failed"], again["errors"]) == (0, 0, [])


@pytest.mark.broker
@pytest.mark.usefixtures("ingest_worker", "empty_ingest_queue")
def test_a_result_completes_the_task_it_names_as_the_original_did(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    enqueue(api_client, admin_headers, ["T-1"], platform="qpublic")
    [task] = original_lease(api_client)["tasks"]
    item = original_item("T-1", task_id=task["task_id"], platform="qpublic")

    response = api_client.post("/internal/results", json=[item], headers=ORIGINAL)
    complete = api_client.post(f"/internal/tasks/{task['task_id']}/complete", headers=ORIGINAL)

    assert response.status_code == 200 and response.json()["inserted"] == 1
    assert task_row(db_session, uuid.UUID(task["task_id"]))["status"] == "succeeded"
    assert complete.status_code == 200 and complete.json()["success"] is True


@pytest.mark.usefixtures("empty_ingest_queue")
def test_results_not_ingested_within_the_bound_are_a_202_with_the_async_shape(
    api_client: TestClient,
) -> None:
    # No ingest worker: the bound (here wait=0.2) passes with every chunk still queued.
    response = api_client.post(
        "/internal/results?wait=0.2", json=[original_item("P-1")], headers=ORIGINAL
    )

    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "respond-async"
    answer = response.json()
    assert (answer["accepted"], answer["failed"], answer["pending"]) == (1, 0, 1)
    assert answer["errors"] == []


@pytest.mark.usefixtures("empty_ingest_queue")
def test_respond_async_answers_at_once_with_indexed_errors(api_client: TestClient) -> None:
    response = api_client.post(
        "/internal/results",
        json=[original_item("P-1"), {"parcel_id": "P-2"}],
        headers={**ORIGINAL, "Prefer": "wait=100, Respond-Async"},
    )

    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "respond-async"
    answer = response.json()
    assert (answer["accepted"], answer["failed"]) == (1, 1)
    assert answer["errors"] == [{"index": 1, "reason": "data: must be an object"}]
    assert "pending" not in answer


def test_results_with_nothing_valid_answer_200_at_once(api_client: TestClient) -> None:
    response = api_client.post("/internal/results", json=[{"bad": 1}], headers=ORIGINAL)

    assert response.status_code == 200
    answer = response.json()
    assert (answer["inserted"], answer["updated"], answer["failed"]) == (0, 0, 1)
    assert answer["errors"] == ["item 0: data: must be an object"]
