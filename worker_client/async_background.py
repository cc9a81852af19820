"""The background duties of an asyncio worker: its heartbeat, and keeping a lease alive while
its task runs (the asyncio forms of ``HeartbeatLoop`` and ``LeaseKeeper``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from worker_client.async_client import AsyncGatewayClient
from worker_client.errors import GatewayError, LeaseConflict, NotFound
from worker_client.heartbeat import KNOWN_COMMANDS
from worker_client.wire import HeartbeatStatus, WorkTask

logger = logging.getLogger(__name__)


@dataclass
class LeaseWatch:
    """Set when the gateway says the lease is gone: the task must not be completed."""

    lost: GatewayError | None = None


@contextlib.asynccontextmanager
async def keep_lease(
    client: AsyncGatewayClient,
    task: WorkTask,
    *,
    extend_every_s: float,
    extend_s: int | None = None,
) -> AsyncIterator[LeaseWatch]:
    """``async with keep_lease(client, task, extend_every_s=60):`` extends the lease every
    ``extend_every_s`` while the block runs."""
    watch = LeaseWatch()

    async def extend_until_done() -> None:
        while True:
            await asyncio.sleep(extend_every_s)
            try:
                await client.extend(task.task_id, task.lease_token, extend_s=extend_s)
            except (LeaseConflict, NotFound) as exc:
                logger.warning("lease of task %s is lost: %s", task.task_id, exc)
                watch.lost = exc
                return
            except GatewayError as exc:  # transient trouble outlasted the retries
                logger.warning("could not extend the lease of task %s: %s", task.task_id, exc)

    extender = asyncio.create_task(extend_until_done())
    try:
        yield watch
    finally:
        extender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await extender


class AsyncHeartbeatLoop:
    """Sends ``read_status()`` every ``interval_s``; each returned command goes to
    ``on_command`` in the order the operator queued them."""

    def __init__(
        self,
        client: AsyncGatewayClient,
        *,
        read_status: Callable[[], HeartbeatStatus],
        on_command: Callable[[str], None],
        interval_s: float = 30.0,
    ) -> None:
        self.client = client
        self.read_status = read_status
        self.on_command = on_command
        self.interval_s = interval_s
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Beats once before returning (the gateway knows the worker from then on)."""
        await self.beat()
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def beat(self) -> None:
        try:
            answer = await self.client.heartbeat(self.read_status())
        except GatewayError as exc:
            logger.warning("heartbeat failed: %s", exc)
            return
        for command in answer.commands:
            if command in KNOWN_COMMANDS:
                self.on_command(command)
            else:
                logger.warning("ignoring unknown command from the gateway: %r", command)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.beat()
