"""One long poll: look once, then sleep until woken (``work_waiters``) or the deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from services.dispatch.work_waiters import WorkWaiters

T = TypeVar("T")
# A woken poll that found nothing looks once more this much later: a broker that received a
# message may show it to another connection a moment later (AMQP publishes are not
# confirmed), while the announcement went through Redis.
EMPTY_WAKE_RETRY_S = 0.05


async def wait_for_work(
    waiters: WorkWaiters,
    platforms: Sequence[str],
    *,
    capacity: int,
    wait_s: float,
    lease: Callable[[], Awaitable[list[T] | None]],
    client_gone: asyncio.Event | None = None,
) -> list[T]:
    """Lease now (unless these platforms were just found drained); if nothing, wait up to
    ``wait_s`` for a wake-up and lease then. A poll whose client has gone (``client_gone``)
    stops waiting and leases nothing more: no one would receive the tasks.

    The waiter is registered before the first look, so an announcement made during it wakes
    this poll instead of being missed. Leases are taken only by ``lease``.
    A lease that may not look (``None``: the worker is paused, its platforms disabled) ends
    the poll at once, handing on the wake-up it consumed to the next waiter.
    """
    deadline = time.monotonic() + wait_s

    async def look() -> list[T] | None:
        return await waiters.look(platforms, capacity=capacity, lease=lease)

    unserved: set[str] = set()  # a wake-up consumed by a look that could not lease
    with waiters.waiting(platforms, capacity=capacity) as waiter:
        leased = [] if waiters.is_drained(platforms) else await look()
        while leased == []:
            if not await waiter.wait_woken(deadline - time.monotonic(), gone=client_gone):
                return []
            woken_for = waiter.take_wakeup()
            leased = await look()
            if leased == [] and deadline - time.monotonic() > EMPTY_WAKE_RETRY_S:
                await asyncio.sleep(EMPTY_WAKE_RETRY_S)
                leased = await look()
            if leased is None:
                unserved = woken_for
            else:
                waiters.served(waiter, leased=len(leased))
    if unserved:  # this poll has left: the wake-up goes to the next waiter
        waiters.wake(dict.fromkeys(unserved, 1))
    return leased or []
