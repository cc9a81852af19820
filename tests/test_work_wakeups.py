"""Idle long polls: woken by the wake-up channel at once, oldest first, and never stranded
when an announcement is lost (the safety poll and the listener's reconnect find the work)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.dispatch.wakeup_channel import LISTENER_CLIENT_NAME
from services.dispatch.work_waiters import WorkWaiters
from tests.dispatch_helpers import clean_dispatch_queues, enqueue
from tests.live_server import serve_app
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
OTHER_WORKER = {"X-Worker-Token": "second-worker-token", "X-Worker-ID": "worker-test-2"}
LONG_SAFETY_POLL_S = 30.0  # longer than any wait below: a wake-up can only come from a notice


@dataclass
class Poll:
    """A long poll running in a thread."""

    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)

    def result(self) -> list[str]:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the poll did not return"
        return [task["target"]["parcel_id"] for task in self.outcome["tasks"]]


def start_poll(client: TestClient, headers: dict[str, str], *, wait: float = 20) -> Poll:
    poll = Poll(threading.Thread(target=lambda: None))

    def run() -> None:
        response = client.get(
            "/internal/work", params={"platforms": "demo", "wait": wait}, headers=headers
        )
        poll.outcome["returned_at"] = time.monotonic()
        poll.outcome["tasks"] = response.json()["tasks"]

    poll.thread = threading.Thread(target=run)
    poll.thread.start()
    return poll


def waiters_of(app: FastAPI) -> WorkWaiters:
    waiters: WorkWaiters = app.state.work_waiters
    return waiters


@pytest.fixture
def safety_poll_s() -> float:
    return LONG_SAFETY_POLL_S


@pytest.fixture
def wakeup_client(
    api_app: FastAPI, safety_poll_s: float, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """An app whose listener runs with the safety poll the test asks for."""
    from settings import get_settings

    monkeypatch.setattr(get_settings(), "work_safety_poll_s", safety_poll_s)
    with TestClient(api_app, raise_server_exceptions=False) as client:
        wait_for(waiters_of(api_app).is_listening.is_set, what="the wake-up listener")
        yield client


def wait_until_waiting(app: FastAPI, count: int) -> None:
    wait_for(lambda: waiters_of(app).count_waiting("demo") == count, what=f"{count} waiter(s)")


def silence_announcements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing goes on; its announcements are lost."""
    from services.dispatch import broker_client as dispatch_broker

    monkeypatch.setattr(dispatch_broker, "announce_published", lambda *a, **k: False)


def test_a_waiting_poll_is_woken_by_an_enqueue_long_before_the_safety_poll(
    wakeup_client: TestClient,
    api_app: FastAPI,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
) -> None:
    poll = start_poll(wakeup_client, worker_headers)
    wait_until_waiting(api_app, 1)

    enqueued_at = time.monotonic()
    enqueue(wakeup_client, admin_headers, ["WAKE-1"])

    assert poll.result() == ["WAKE-1"]
    assert poll.outcome["returned_at"] - enqueued_at < 1.0


def test_the_longest_waiting_poll_is_served_first(
    wakeup_client: TestClient,
    api_app: FastAPI,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
) -> None:
    first = start_poll(wakeup_client, worker_headers)
    wait_until_waiting(api_app, 1)
    second = start_poll(wakeup_client, OTHER_WORKER)
    wait_until_waiting(api_app, 2)

    enqueue(wakeup_client, admin_headers, ["FIRST-COME"])
    assert first.result() == ["FIRST-COME"]
    wait_until_waiting(api_app, 1)
    assert second.thread.is_alive()

    enqueue(wakeup_client, admin_headers, ["NEXT"])
    assert second.result() == ["NEXT"]


@pytest.mark.parametrize("safety_poll_s", [1.0])
def test_work_whose_announcement_is_lost_is_found_by_the_safety_poll(
    wakeup_client: TestClient,
    api_app: FastAPI,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    silence_announcements(monkeypatch)
    poll = start_poll(wakeup_client, worker_headers)
    wait_until_waiting(api_app, 1)

    enqueued_at = time.monotonic()
    enqueue(wakeup_client, admin_headers, ["UNANNOUNCED"])

    assert poll.result() == ["UNANNOUNCED"]
    assert poll.outcome["returned_at"] - enqueued_at < 1.0 + 2.0


def _kill_listener_connections(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        ids = [c["id"] for c in client.client_list() if c.get("name") == LISTENER_CLIENT_NAME]
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        client.close()


def _is_subscribed(url: str) -> bool:
    client = redis.Redis.from_url(url)
    try:
        listeners = [c for c in client.client_list() if c.get("name") == LISTENER_CLIENT_NAME]
        return any(int(c.get("sub", 0)) > 0 for c in listeners)
    finally:
        client.close()


@pytest.mark.parametrize("safety_poll_s", [1.0])
def test_a_dropped_listener_loses_no_work_and_wakes_at_once_again_after_reconnecting(
    wakeup_client: TestClient,
    api_app: FastAPI,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from settings import get_settings

    url = get_settings().cache_url
    poll = start_poll(wakeup_client, worker_headers)
    wait_until_waiting(api_app, 1)

    assert _kill_listener_connections(url) == 1
    with monkeypatch.context() as patch:  # announced while nobody listens: lost
        silence_announcements(patch)
        enqueue(wakeup_client, admin_headers, ["WHILE-DOWN"])
    assert poll.result() == ["WHILE-DOWN"]

    wait_for(lambda: _is_subscribed(url), what="the listener to subscribe again")
    heard = waiters_of(api_app).announcements
    again = start_poll(wakeup_client, worker_headers)
    wait_until_waiting(api_app, 1)
    enqueue(wakeup_client, admin_headers, ["AFTER"])
    assert again.result() == ["AFTER"]
    wait_for(lambda: waiters_of(api_app).announcements > heard, what="the announcement")


def _waiters() -> WorkWaiters:
    return WorkWaiters(redis_url="redis://unused", safety_poll_s=LONG_SAFETY_POLL_S)


def test_an_announcement_wakes_the_oldest_waiters_until_their_capacity_covers_it() -> None:
    waiters = _waiters()
    with (
        waiters.waiting(["demo"], capacity=10) as oldest,
        waiters.waiting(["other"], capacity=10) as elsewhere,
        waiters.waiting(["demo", "other"], capacity=10) as second,
        waiters.waiting(["demo"], capacity=10) as youngest,
    ):
        assert waiters.wake({"demo": 15}) == 2
        assert (oldest.is_woken, elsewhere.is_woken, second.is_woken) == (True, False, True)
        assert not youngest.is_woken
        assert waiters.wake({"demo": 15}) == 0  # the same work: already on its way


def test_a_full_batch_or_an_unserved_wakeup_is_handed_to_the_next_waiter() -> None:
    waiters = _waiters()
    registrations = [waiters.waiting(["demo"], capacity=2) for _ in range(3)]
    first, second, third = (registration.__enter__() for registration in registrations)
    waiters.wake({"demo": 1})
    assert [w.is_woken for w in (first, second, third)] == [True, False, False]

    first.take_wakeup()
    waiters.served(first, leased=2)  # a full batch: more may be waiting
    registrations[0].__exit__(None, None, None)
    assert [w.is_woken for w in (second, third)] == [True, False]

    registrations[1].__exit__(None, None, None)  # its client left before it leased
    assert third.is_woken
    registrations[2].__exit__(None, None, None)
    assert waiters.count_waiting() == 0


def test_the_safety_poll_wakes_one_waiter_per_platform_oldest_first() -> None:
    waiters = _waiters()
    with (
        waiters.waiting(["demo", "qpublic"], capacity=10) as both,
        waiters.waiting(["demo"], capacity=10) as demo_only,
        waiters.waiting(["bid4assets"], capacity=10) as third,
    ):
        assert waiters.wake_oldest_per_platform() == 2
        assert (both.is_woken, demo_only.is_woken, third.is_woken) == (True, False, True)


def test_a_short_look_marks_its_platforms_drained_until_an_announcement_for_them() -> None:
    import asyncio

    waiters = _waiters()

    async def lease_nothing() -> list[str]:
        return []

    asyncio.run(waiters.look(["demo", "qpublic"], capacity=10, lease=lease_nothing))
    assert waiters.is_drained(["demo"]) and waiters.is_drained(["demo", "qpublic"])
    assert not waiters.is_drained(["demo", "bid4assets"])  # never looked at

    waiters.wake({"demo": 1})
    assert not waiters.is_drained(["demo"]) and waiters.is_drained(["qpublic"])
    waiters.wake_oldest_per_platform()  # a safety poll trusts no earlier look
    assert not waiters.is_drained(["qpublic"])


def test_a_look_that_did_not_lease_because_its_worker_is_paused_marks_nothing_drained() -> None:
    import asyncio

    waiters = _waiters()

    async def paused() -> list[str] | None:
        return None

    assert asyncio.run(waiters.look(["demo"], capacity=10, lease=paused)) is None
    assert not waiters.is_drained(["demo"])  # other workers' polls still look at once


def test_a_long_poll_whose_client_hung_up_stops_waiting_and_leases_nothing(
    api_app: FastAPI, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    with serve_app(api_app) as url, httpx.Client(base_url=url) as client:
        wait_for(waiters_of(api_app).is_listening.is_set, what="the wake-up listener")
        with pytest.raises(httpx.ReadTimeout):  # the worker gives up and closes its connection
            client.get(
                "/internal/work",
                params={"platforms": "demo", "wait": 30},
                headers=worker_headers,
                timeout=httpx.Timeout(5, read=0.5),
            )
        wait_for(  # well before its 30 s were up
            lambda: waiters_of(api_app).count_waiting("demo") == 0,
            timeout_s=10,
            what="the abandoned poll to stop waiting",
        )

        enqueue(client, admin_headers, ["AFTER-HANGUP"])

        leased = client.get("/internal/work", params={"platforms": "demo"}, headers=worker_headers)
        assert [t["target"]["parcel_id"] for t in leased.json()["tasks"]] == ["AFTER-HANGUP"]


def test_a_worker_paused_while_its_long_poll_waits_hands_its_wakeup_to_the_next_waiter(
    wakeup_client: TestClient,
    api_app: FastAPI,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
) -> None:
    wakeup_client.post("/internal/heartbeat", json={}, headers=worker_headers)
    paused_poll = start_poll(wakeup_client, worker_headers, wait=20)  # the oldest waiter
    wait_until_waiting(api_app, 1)
    other_poll = start_poll(wakeup_client, OTHER_WORKER, wait=20)
    wait_until_waiting(api_app, 2)
    paused = wakeup_client.post(
        "/admin/workers/worker-test-1/commands", json={"command": "pause"}, headers=admin_headers
    )
    assert paused.status_code == 201

    enqueued_at = time.monotonic()
    enqueue(wakeup_client, admin_headers, ["AFTER-PAUSE"])

    assert paused_poll.result() == []  # woken first, it found its worker paused
    assert paused_poll.outcome["returned_at"] - enqueued_at < 5  # and answered at once
    assert other_poll.result() == ["AFTER-PAUSE"]
    assert other_poll.outcome["returned_at"] - enqueued_at < 5  # long before a safety poll
