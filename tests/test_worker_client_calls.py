"""The worker client against the real API on a live uvicorn server: every call of the contract,
typed errors, and retries through real faults (server stopped, broker stopped, broker pool
exhausted, a rate-limiting front, an answer cut in transit)."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.dispatch_helpers import clean_dispatch_queues, enqueue, expire_leases, task_row
from tests.outages import TcpProxy
from tests.waiting import wait_for
from tests.worker_client_stack import FaultyFront, RestartableServer
from worker_client import (
    ClientConfig,
    GatewayClient,
    GatewayUnreachable,
    HeartbeatStatus,
    LeaseConflict,
    NotFound,
    OutcomeUnknown,
    ResultItem,
    RetryNotice,
    RetryPolicy,
    ServerError,
    Unauthorized,
    ValidationFailed,
)
from worker_client.heartbeat import HeartbeatLoop
from worker_client.lease_keeper import LeaseKeeper
from worker_client.wire import WorkTask

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
T = TypeVar("T")
WORKER_ID = "client-test-1"
QUICK_RETRIES = RetryPolicy(max_attempts=40, base_delay_s=0.05, max_delay_s=0.3)


@dataclass
class LiveGateway:
    server: RestartableServer
    front: FaultyFront
    notices: list[RetryNotice] = field(default_factory=list)

    def client(
        self, *, token: str = WORKER_TOKEN, retry: RetryPolicy = QUICK_RETRIES
    ) -> GatewayClient:
        config = ClientConfig(self.server.url, token, WORKER_ID, timeout_s=10, retry=retry)
        return GatewayClient(config, on_retry=self.notices.append)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=10)


@pytest.fixture
def gateway(api_app: Any) -> Iterator[LiveGateway]:
    front = FaultyFront(api_app)
    server = RestartableServer(front)
    server.start()
    try:
        yield LiveGateway(server, front)
    finally:
        server.stop()


@pytest.fixture
def client(gateway: LiveGateway) -> Iterator[GatewayClient]:
    with gateway.client() as gateway_client:
        yield gateway_client


def enqueue_demo(gateway: LiveGateway, count: int) -> list[uuid.UUID]:
    with gateway.admin() as admin:
        parcel_ids = [f"CLIENT-{n}-{uuid.uuid4().hex[:6]}" for n in range(count)]
        return enqueue(admin, {"X-Admin-Token": ADMIN_TOKEN}, parcel_ids)


def lease_all(client: GatewayClient, count: int) -> list[WorkTask]:
    tasks: list[WorkTask] = []
    while len(tasks) < count:
        tasks += client.lease(["demo"], capacity=count - len(tasks), wait_s=2).tasks
    return tasks


def in_background(call: Callable[[], T]) -> Callable[[], T]:
    """Run ``call`` in a thread now; the returned function waits for its value (or error)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which raises it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result() -> T:
        thread.join(timeout=60)
        assert not thread.is_alive(), "the call did not return"
        if "error" in outcome:
            raise outcome["error"]
        value: T = outcome["value"]
        return value

    return result


def demo_result(parcel_id: str, task_id: uuid.UUID | None = None) -> ResultItem:
    from scrapers.demo import demo_parcel

    return ResultItem(
        task_id=task_id,
        parcel_id=parcel_id,
        platform="demo",
        state="FL",
        county="dixie",
        data=demo_parcel(parcel_id),
        scraped_at=datetime(2026, 11, 30, 12, tzinfo=UTC),
    )


def result_item(task: WorkTask) -> ResultItem:
    return demo_result(task.target.parcel_id, task.task_id)


# --- the contract's calls ------------------------------------------------------------------


def test_leased_tasks_are_extended_and_completed_with_their_lease_tokens(
    gateway: LiveGateway, client: GatewayClient, db_session: Session
) -> None:
    enqueue_demo(gateway, 3)
    first, second, third = lease_all(client, 3)
    assert first.lease_token != second.lease_token and first.attempt == 1

    extended = client.extend(first.task_id, first.lease_token, extend_s=900)
    done = client.complete(first.task_id, first.lease_token)
    again = client.complete(first.task_id, first.lease_token)
    batch = client.complete_many([(t.task_id, t.lease_token) for t in (second, third)])

    assert extended.lease_expires_at > first.lease_expires_at
    assert (done.status, done.already_completed, again.already_completed) == (
        "succeeded",
        False,
        True,
    )
    assert batch.success and set(batch.completed) == {second.task_id, third.task_id}
    assert {task_row(db_session, t.task_id)["status"] for t in (first, second, third)} == {
        "succeeded"
    }
    assert gateway.notices == []


def test_a_failed_task_comes_back_with_the_gateways_retry_decision(
    gateway: LiveGateway, client: GatewayClient, db_session: Session
) -> None:
    enqueue_demo(gateway, 1)
    (task,) = lease_all(client, 1)

    outcome = client.fail(task.task_id, task.lease_token, reason="platform_down", message="503")

    assert outcome.should_retry and not outcome.moved_to_dlq and outcome.retry_after
    row = task_row(db_session, task.task_id)
    assert (row["status"], row["last_error_reason"]) == ("retry_wait", "platform_down")


def test_results_are_queued_at_once_with_respond_async_and_pages_are_stored_once(
    gateway: LiveGateway, client: GatewayClient
) -> None:
    enqueue_demo(gateway, 1)
    (task,) = lease_all(client, 1)
    page = b"<html>" + b"<p>parcel</p>" * 10_000 + b"</html>"  # several upload chunks

    queued = client.submit_results([result_item(task)], respond_async=True)
    waited = client.submit_results([result_item(task)], respond_async=True, wait_s=0.2)
    metadata = {"task_id": str(task.task_id), "platform": "demo", "content_type": "text/html"}
    stored = client.upload_raw_file(io.BytesIO(page), metadata=metadata)
    again = client.upload_raw_file(io.BytesIO(page))

    assert (queued.is_ingested, queued.accepted, queued.failed) == (False, 1, 0)
    assert waited.pending == 1  # no ingest worker runs in this test
    assert stored.size_bytes == len(page) and not stored.is_duplicate
    assert again.is_duplicate and again.sha256 == stored.sha256 and again.path == stored.path


def test_the_heartbeat_loop_reports_status_and_carries_out_commands_from_the_admin_api(
    gateway: LiveGateway, client: GatewayClient
) -> None:
    received: list[str] = []
    status = HeartbeatStatus(active_tasks=2, platforms=["demo"], cpu_percent=12.5)
    loop = HeartbeatLoop(
        client, read_status=lambda: status, on_command=received.append, interval_s=0.1
    )
    loop.start()
    try:
        with gateway.admin() as admin:
            headers = {"X-Admin-Token": ADMIN_TOKEN}
            for command in ("pause", "resume", "shutdown"):
                answer = admin.post(
                    f"/admin/workers/{WORKER_ID}/commands",
                    json={"command": command},
                    headers=headers,
                )
                assert answer.status_code == 201, answer.text
            wait_for(lambda: len(received) == 3, what="the commands to arrive")
            fleet = admin.get("/admin/workers", headers=headers).json()["workers"]
    finally:
        loop.stop()

    assert received == ["pause", "resume", "shutdown"]
    (registered,) = fleet
    assert (registered["worker_id"], registered["active_tasks"]) == (WORKER_ID, 2)
    assert (registered["platforms"], registered["cpu_percent"]) == (["demo"], 12.5)


def test_the_lease_keeper_extends_held_leases_and_drops_those_taken_away(
    gateway: LiveGateway, client: GatewayClient, db_session: Session
) -> None:
    from tasks.dispatch_jobs import reap_leases

    enqueue_demo(gateway, 2)
    kept, lost = lease_all(client, 2)
    taken_away: list[uuid.UUID] = []
    keeper = LeaseKeeper(
        client, extend_every_s=0.1, extend_s=600, on_lost=lambda t, _: taken_away.append(t.task_id)
    )
    keeper.hold(kept)
    keeper.start()
    try:
        wait_for(
            lambda: task_row(db_session, kept.task_id)["lease_expires_at"] > kept.lease_expires_at,
            what="the lease to be extended",
        )
        keeper.stop()
        expire_leases()
        assert reap_leases()["expired"] == 2  # the lease ran out: a failed attempt
        keeper.hold(lost)
        keeper.extend_all()
    finally:
        keeper.stop()

    assert set(taken_away) == {kept.task_id, lost.task_id} and keeper.held() == []


# --- typed errors -------------------------------------------------------------------------


def test_client_errors_raise_typed_exceptions_carrying_the_envelope_and_are_not_retried(
    gateway: LiveGateway, client: GatewayClient
) -> None:
    enqueue_demo(gateway, 1)
    (task,) = lease_all(client, 1)

    with gateway.client(token="not-a-worker-token") as stranger, pytest.raises(Unauthorized) as a:
        stranger.heartbeat(HeartbeatStatus())
    with pytest.raises(LeaseConflict) as stale:
        client.complete(task.task_id, task.lease_token + 1)
    with pytest.raises(NotFound) as missing:
        client.complete(uuid.uuid4(), 1)
    with pytest.raises(ValidationFailed) as unknown:
        client.lease(["no-such-platform"])

    assert (a.value.status_code, a.value.code) == (401, "UNAUTHORIZED")
    assert "X-Worker-Token" in a.value.message and a.value.request_id
    assert stale.value.code == "CONFLICT" and "stale" in stale.value.message
    assert missing.value.code == "NOT_FOUND"
    assert unknown.value.code == "VALIDATION_ERROR" and "no-such-platform" in unknown.value.message
    assert gateway.notices == []


# --- retries through real faults -----------------------------------------------------------


def test_calls_wait_out_a_stopped_server_and_succeed_once_it_is_back_on_its_port(
    gateway: LiveGateway, client: GatewayClient
) -> None:
    enqueue_demo(gateway, 1)
    gateway.server.stop()
    # Nothing reached the server, so even a lease is tried again.
    leased = in_background(lambda: client.lease(["demo"], capacity=1))
    wait_for(lambda: len(gateway.notices) >= 2, what="refused connections to be retried")
    gateway.server.start()

    (task,) = leased().tasks
    assert {n.cause.split(":")[0] for n in gateway.notices} == {"ConnectError"}
    assert client.complete(task.task_id, task.lease_token).status == "succeeded"


def test_a_server_that_stays_down_ends_in_gateway_unreachable(gateway: LiveGateway) -> None:
    gateway.server.stop()
    patience = RetryPolicy(max_attempts=3, base_delay_s=0.01)
    with gateway.client(retry=patience) as client, pytest.raises(GatewayUnreachable, match="3"):
        client.heartbeat(HeartbeatStatus())
    assert len(gateway.notices) == 2


def test_results_refused_with_503_while_the_broker_is_down_are_sent_again_and_taken_once(
    gateway: LiveGateway, client: GatewayClient, stoppable_broker: TcpProxy
) -> None:
    from tests.test_results_api import ingest_queue_length

    enqueue_demo(gateway, 1)
    (task,) = lease_all(client, 1)
    stoppable_broker.stop()
    sent = in_background(lambda: client.submit_results([result_item(task)]))
    wait_for(lambda: len(gateway.notices) >= 2, what="503 answers to be retried")
    stoppable_broker.start()

    assert sent().accepted == 1
    assert {n.status_code for n in gateway.notices} == {503}
    assert "SERVICE_UNAVAILABLE" in gateway.notices[0].cause
    assert ingest_queue_length() == 1


def test_a_503_that_outlasts_the_retries_raises_server_error_with_its_code(
    gateway: LiveGateway, stoppable_broker: TcpProxy
) -> None:
    stoppable_broker.stop()
    patience = RetryPolicy(max_attempts=2, base_delay_s=0.01)
    with gateway.client(retry=patience) as client, pytest.raises(ServerError) as refused:
        client.submit_results([demo_result("NO-TASK-1")])
    stoppable_broker.start()
    assert (refused.value.status_code, refused.value.code) == (503, "SERVICE_UNAVAILABLE")


def test_a_lease_refused_with_503_and_retry_after_waits_as_told_then_gets_its_tasks(
    gateway: LiveGateway, client: GatewayClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.dispatch import broker_client as dispatch_broker
    from tasks.app import app

    enqueue_demo(gateway, 1)
    monkeypatch.setattr(dispatch_broker, "POOL_ACQUIRE_TIMEOUT_S", 0.2)
    held = [app.pool.acquire(block=True, timeout=1) for _ in range(app.pool.limit)]
    try:
        leased = in_background(lambda: client.lease(["demo"], capacity=1))
        wait_for(lambda: gateway.notices, what="the lease to be refused")
    finally:
        for connection in held:
            connection.release()

    assert len(leased().tasks) == 1
    assert gateway.notices[0].status_code == 503 and gateway.notices[0].delay_s >= 1.0


def test_429_with_retry_after_is_waited_out_then_the_call_goes_through(
    gateway: LiveGateway, client: GatewayClient
) -> None:
    gateway.front.refuse_next = 2

    answer = client.heartbeat(HeartbeatStatus(platforms=["demo"]))

    assert answer.acknowledged
    assert [n.status_code for n in gateway.notices] == [429, 429]
    assert all(n.delay_s >= 1.0 and "RATE_LIMIT_EXCEEDED" in n.cause for n in gateway.notices)


def test_a_lease_whose_answer_is_lost_is_not_repeated_as_its_tasks_are_already_leased(
    gateway: LiveGateway, client: GatewayClient, db_session: Session
) -> None:
    (task_id,) = enqueue_demo(gateway, 1)
    gateway.front.cut_next = 1

    with pytest.raises(OutcomeUnknown, match="not repeated"):
        client.lease(["demo"], capacity=1)

    row = task_row(db_session, task_id)
    assert (row["status"], row["leased_by"]) == ("leased", WORKER_ID)
    assert gateway.notices == []


def test_a_complete_whose_answer_is_lost_is_repeated_harmlessly(
    gateway: LiveGateway, client: GatewayClient
) -> None:
    enqueue_demo(gateway, 1)
    (task,) = lease_all(client, 1)
    gateway.front.cut_next = 1

    outcome = client.complete(task.task_id, task.lease_token)

    assert outcome.already_completed  # the lost answer's complete had landed
    assert [n.cause.split(":")[0] for n in gateway.notices] == ["RemoteProtocolError"]
