"""The asyncio client and its background duties against the real API on a live uvicorn server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.dispatch_helpers import clean_dispatch_queues, enqueue, task_row
from tests.waiting import wait_for
from tests.worker_client_stack import RestartableServer
from worker_client import (
    AsyncGatewayClient,
    AsyncHeartbeatLoop,
    ClientConfig,
    HeartbeatStatus,
    LeaseConflict,
    RetryNotice,
    RetryPolicy,
    keep_lease,
)

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
WORKER_ID = "async-client-1"
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}


@pytest.fixture
def server(api_app: Any) -> Iterator[RestartableServer]:
    live = RestartableServer(api_app)
    live.start()
    try:
        yield live
    finally:
        live.stop()


def async_client(server: RestartableServer, notices: list[RetryNotice]) -> AsyncGatewayClient:
    retry = RetryPolicy(max_attempts=40, base_delay_s=0.05, max_delay_s=0.3)
    config = ClientConfig(server.url, WORKER_TOKEN, WORKER_ID, timeout_s=10, retry=retry)
    return AsyncGatewayClient(config, on_retry=notices.append)


def enqueue_demo(server: RestartableServer, count: int) -> list[uuid.UUID]:
    with httpx.Client(base_url=server.url, timeout=10) as admin:
        return enqueue(admin, ADMIN, [f"ASYNC-{uuid.uuid4().hex[:8]}" for _ in range(count)])


def test_an_async_worker_keeps_its_lease_alive_while_working_then_completes(
    server: RestartableServer, db_session: Session
) -> None:
    (task_id,) = enqueue_demo(server, 1)

    async def work() -> None:
        async with async_client(server, []) as client:
            (task,) = (await client.lease(["demo"], capacity=1, wait_s=2)).tasks
            async with keep_lease(client, task, extend_every_s=0.05, extend_s=900) as watch:
                await asyncio.to_thread(
                    wait_for,
                    lambda: (
                        task_row(db_session, task_id)["lease_expires_at"] > task.lease_expires_at
                    ),
                    what="the lease to be extended",
                )
            assert watch.lost is None
            assert (await client.complete(task.task_id, task.lease_token)).status == "succeeded"
            with pytest.raises(LeaseConflict):
                await client.fail(task.task_id, task.lease_token, reason="timeout")

    asyncio.run(work())
    assert task_row(db_session, task_id)["status"] == "succeeded"


def test_the_async_heartbeat_carries_out_commands_and_survives_a_server_restart(
    server: RestartableServer,
) -> None:
    notices: list[RetryNotice] = []
    received: list[str] = []

    async def beat() -> None:
        async with async_client(server, notices) as client:
            loop = AsyncHeartbeatLoop(
                client,
                read_status=lambda: HeartbeatStatus(platforms=["demo"]),
                on_command=received.append,
                interval_s=0.05,
            )
            await loop.start()
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(wait_for, lambda: notices, what="a refused heartbeat")
            await asyncio.to_thread(server.start)
            with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as admin:
                path = f"/admin/workers/{WORKER_ID}/commands"
                assert admin.post(path, json={"command": "pause"}).status_code == 201
            await asyncio.to_thread(wait_for, lambda: received, what="the command")
            await loop.stop()

    asyncio.run(beat())
    assert received == ["pause"]
    assert notices[0].cause.startswith("ConnectError")
