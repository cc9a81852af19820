"""Single completes written in groups: each call gets the answer it would have had alone.

The API gathers the completes that arrive while a group is being written (``GroupCommit``)
and writes them in one transaction (``complete_each``). A group mixes workers, tokens,
repeats and refusals; a refused call changes nothing, and the others of its group are
written all the same. A group that a deadlock breaks, or that waits too long for a row held
elsewhere, is written again, each call alone.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.session import get_engine
from gateway_api.group_commit import GroupCommit
from services.dispatch.grouped_completion import (
    CompleteAnswer,
    CompleteCall,
    complete_each,
    is_one_calls_trouble,
    write_completes,
)
from services.dispatch.leases import CompletionOutcome
from services.errors import Conflict, NotFound
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    clean_dispatch_queues,
    enqueue,
    lease,
    task_row,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
HOLDER = "worker-test-1"
OTHER = "worker-test-2"
OTHER_HEADERS = {"X-Worker-Token": "second-worker-token", "X-Worker-ID": OTHER}


def leased_tasks(
    api_client: TestClient,
    admin_headers: dict[str, str],
    headers: dict[str, str],
    parcel_ids: list[str],
) -> list[dict[str, Any]]:
    enqueue(api_client, admin_headers, parcel_ids)
    tasks = lease(api_client, headers, capacity=len(parcel_ids))
    assert len(tasks) == len(parcel_ids)
    return tasks


def call(task: dict[str, Any], worker_id: str, token: int | None) -> CompleteCall:
    return CompleteCall(uuid.UUID(task["task_id"]), worker_id, token)


def test_a_group_answers_each_call_as_if_it_were_alone(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    mine = leased_tasks(api_client, admin_headers, worker_headers, ["G-1", "G-2", "G-3", "G-4"])
    [theirs] = leased_tasks(api_client, admin_headers, OTHER_HEADERS, ["G-5"])
    unknown = uuid.uuid4()
    calls = [
        call(mine[0], HOLDER, mine[0]["lease_token"]),  # held, with its token
        call(mine[1], OTHER, None),  # another worker, before the holder's own call
        call(mine[1], HOLDER, None),  # held, without a token
        call(mine[2], OTHER, mine[2]["lease_token"]),  # another worker
        call(mine[3], HOLDER, mine[3]["lease_token"] + 1),  # a stale token
        call(mine[0], HOLDER, mine[0]["lease_token"]),  # a repeat, in the same group
        CompleteCall(unknown, HOLDER, None),
        call(theirs, OTHER, theirs["lease_token"]),  # another worker's own lease
        call(mine[3], HOLDER, mine[3]["lease_token"]),  # after its stale call, the right one
    ]

    before = task_row(db_session, mine[0]["task_id"])["updated_at"]
    db_session.rollback()
    answers = complete_each(db_session, calls, now=datetime.now(UTC))
    db_session.commit()

    kinds = [type(answer) for answer in answers]
    assert kinds == [
        CompletionOutcome,
        Conflict,
        CompletionOutcome,
        Conflict,
        Conflict,
        CompletionOutcome,
        NotFound,
        CompletionOutcome,
        CompletionOutcome,
    ]
    already = [a.was_already_completed for a in answers if isinstance(a, CompletionOutcome)]
    assert already == [False, False, True, False, False]
    assert [str(a.task_id) for a in answers if isinstance(a, CompletionOutcome)] == [
        mine[0]["task_id"],
        mine[1]["task_id"],
        mine[0]["task_id"],
        theirs["task_id"],
        mine[3]["task_id"],
    ]
    statuses = {t["task_id"]: task_row(db_session, t["task_id"])["status"] for t in [*mine, theirs]}
    assert statuses == {
        mine[0]["task_id"]: "succeeded",
        mine[1]["task_id"]: "succeeded",
        mine[2]["task_id"]: "leased",  # the other worker's call changed nothing
        mine[3]["task_id"]: "succeeded",
        theirs["task_id"]: "succeeded",
    }
    assert task_row(db_session, mine[2]["task_id"])["leased_by"] == HOLDER
    assert task_row(db_session, mine[0]["task_id"])["updated_at"] > before
    assert_ledger_balanced(db_session, enqueued=5)


def test_concurrent_completes_over_http_each_get_their_own_answer(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    tasks = leased_tasks(
        api_client, admin_headers, worker_headers, [f"C-{n:02d}" for n in range(40)]
    )
    # Every task completed twice by its holder and tried once by another worker, all at once.
    calls = [(task, worker_headers, task["lease_token"]) for task in tasks] * 2
    calls += [(task, OTHER_HEADERS, task["lease_token"]) for task in tasks]

    def complete(entry: tuple[dict[str, Any], dict[str, str], int]) -> tuple[str, int, Any]:
        task, headers, token = entry
        response = api_client.post(
            f"/internal/tasks/{task['task_id']}/complete",
            json={"lease_token": token},
            headers=headers,
        )
        return headers["X-Worker-ID"], response.status_code, response.json()

    written_before = complete_group_figures(api_client)
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(complete, calls))
    written_after = complete_group_figures(api_client)

    by_holder = [(status, body) for worker, status, body in answers if worker == HOLDER]
    assert {status for status, _ in by_holder} == {200}, by_holder
    firsts: dict[str, int] = {}
    for _, body in by_holder:
        firsts[body["task_id"]] = firsts.get(body["task_id"], 0) + (not body["already_completed"])
    assert firsts == {task["task_id"]: 1 for task in tasks}  # one first complete per task
    refused = [(status, body["error"]["code"]) for w, status, body in answers if w == OTHER]
    assert refused == [(409, "CONFLICT")] * len(tasks)
    assert {task_row(db_session, t["task_id"])["status"] for t in tasks} == {"succeeded"}
    assert_ledger_balanced(db_session, enqueued=len(tasks))
    # Operators see every call written once, in groups of one or more.
    calls_written = written_after["sum"] - written_before["sum"]
    groups = written_after["count"] - written_before["count"]
    assert calls_written == len(calls) and 1 <= groups <= len(calls)


def test_a_group_a_deadlock_breaks_is_written_again_each_call_alone(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    tasks = leased_tasks(api_client, admin_headers, worker_headers, ["D-1", "D-2"])
    first, second = sorted(tasks, key=lambda task: uuid.UUID(task["task_id"]))
    calls = [call(second, HOLDER, None), call(first, HOLDER, first["lease_token"])]
    # Another transaction holds the second task; the group locks the first (in id order) and
    # waits for it, then the other transaction asks for the first: a deadlock, which
    # PostgreSQL breaks.
    other = get_engine().raw_connection()
    deadlocks_before = count_deadlocks(db_session)
    try:
        cursor = other.cursor()
        cursor.execute("SELECT 1 FROM scrape_tasks WHERE id = %s FOR UPDATE", (second["task_id"],))
        answers: dict[int, Any] = {}
        # A lock timeout far past PostgreSQL's deadlock check (1 s): on a slow machine the
        # deadlock, not the timeout, must be what stops the group.
        writer = write_as_one_group(
            calls, answers, write=functools.partial(write_completes, group_lock_timeout_s=60)
        )
        wait_for(lambda: group_waits_for_a_lock(db_session), what="the group to wait")
        cursor.execute("UPDATE scrape_tasks SET priority = 1 WHERE id = %s", (first["task_id"],))
        other.commit()
        writer.join(timeout=30)
        assert not writer.is_alive()
    finally:
        other.close()

    # The statistics reach pg_stat_database when the backend flushes them (within 1-10 s).
    wait_for(lambda: count_deadlocks(db_session) == deadlocks_before + 1, what="the deadlock")
    assert [answers[0], answers[1]] == [
        CompletionOutcome(uuid.UUID(second["task_id"]), False),
        CompletionOutcome(uuid.UUID(first["task_id"]), False),
    ]
    assert {task_row(db_session, t["task_id"])["status"] for t in (first, second)} == {"succeeded"}


def test_a_group_waits_for_a_row_held_elsewhere_only_briefly_then_each_call_alone(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    held, free = leased_tasks(api_client, admin_headers, worker_headers, ["L-1", "L-2"])
    calls = [call(held, HOLDER, held["lease_token"]), call(free, HOLDER, None)]
    other = get_engine().raw_connection()
    try:
        cursor = other.cursor()
        cursor.execute("SELECT 1 FROM scrape_tasks WHERE id = %s FOR UPDATE", (held["task_id"],))
        answers: dict[int, Any] = {}
        writer = write_as_one_group(calls, answers)
        # Past the group's lock timeout each call is written alone: the free task's caller has
        # its answer while the other transaction still holds the second task.
        wait_for(lambda: 1 in answers, what="the free task's answer")
        assert answers[1] == CompletionOutcome(uuid.UUID(free["task_id"]), False)
        assert 0 not in answers
        assert task_row(db_session, held["task_id"])["status"] == "leased"
        other.commit()
        writer.join(timeout=30)
        assert not writer.is_alive()
    finally:
        other.close()

    assert answers[0] == CompletionOutcome(uuid.UUID(held["task_id"]), False)
    assert task_row(db_session, held["task_id"])["status"] == "succeeded"


def complete_group_figures(api_client: TestClient) -> dict[str, float]:
    """The group-size histogram's sum (calls written) and count (groups) on ``/metrics``."""
    figures = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(api_client.get("/metrics").text):
        for sample in family.samples:
            part = sample.name.removeprefix("gateway_complete_group_size_")
            if part in figures:
                figures[part] += sample.value
    return figures


def write_as_one_group(
    calls: list[CompleteCall],
    answers: dict[int, Any],
    *,
    write: Callable[[list[CompleteCall]], list[CompleteAnswer]] = write_completes,
) -> threading.Thread:
    """Submit ``calls`` to a group commit as the API does, all in one group, on an event loop
    in a thread; each answer (or error) lands in ``answers`` under its call's index."""
    commit: GroupCommit[CompleteCall, CompletionOutcome] = GroupCommit(
        write, max_group=500, max_writers=1, stall_s=60, split_on=is_one_calls_trouble
    )

    async def one(index: int, complete: CompleteCall) -> None:
        try:
            answers[index] = await commit.submit(complete)
        except Exception as exc:  # noqa: BLE001  the test reads it
            answers[index] = exc

    async def submit_all() -> None:
        # Submitted in one step of the loop: the writer takes them all as one group.
        await asyncio.gather(*(one(n, complete) for n, complete in enumerate(calls)))

    thread = threading.Thread(target=asyncio.run, args=(submit_all(),))
    thread.start()
    return thread


def count_deadlocks(session: Session) -> int:
    session.rollback()
    return int(
        session.scalar(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        )
        or 0
    )


def group_waits_for_a_lock(session: Session) -> bool:
    session.rollback()
    waiting = session.scalar(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE 'UPDATE scrape_tasks AS t%'"
        )
    )
    return bool(waiting)


def test_with_the_database_unreachable_a_complete_is_a_503_and_the_lease_stands(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    from db.session import configure_engine
    from gateway_localstack.servers import find_free_port

    [task] = leased_tasks(api_client, admin_headers, worker_headers, ["U-1"])
    route, body = (
        f"/internal/tasks/{task['task_id']}/complete",
        {"lease_token": task["lease_token"]},
    )
    configure_engine("tests", f"postgresql://nobody@127.0.0.1:{find_free_port()}/gone")
    try:
        refused = api_client.post(route, json=body, headers=worker_headers)
    finally:
        configure_engine("tests")

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert refused.headers["Retry-After"] == "1"
    assert task_row(db_session, task["task_id"])["status"] == "leased"
    done = api_client.post(route, json=body, headers=worker_headers)
    assert done.status_code == 200 and done.json()["already_completed"] is False, done.text
