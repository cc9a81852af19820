"""Long polls that wait without polling: one listener per API process wakes them.

A long poll registers a ``Waiter`` (its platforms and capacity) and sleeps on its event;
it does not touch the broker while it waits. One listener task per process subscribes to
the wake-up channel (``services.dispatch.wakeup_channel``); an announcement of *n* messages
for a platform wakes that platform's waiters oldest first, until their capacities cover *n*.

Fair hand-off:
- Waiters are kept in arrival order; a wake-up always goes to the longest-waiting one.
- A woken waiter that leased nothing (another process's waiter was quicker) keeps its place.
- A woken waiter that filled its capacity wakes the next one: more work may be waiting.
- A waiter that leaves woken but unserved (its deadline came, its client went) hands its
  wake-up to the next one.

Nothing is lost when an announcement is: a safety poll every ``safety_poll_s`` (and one on
every reconnect of the listener) wakes the oldest waiter of each platform, which leases
and, finding a full batch, wakes the next. Capacity and strict priority stay with leasing.
Several API processes each wake their own oldest waiter; fairness holds within a process.

Known-empty platforms: a look that came back short of its capacity drained its platforms'
queues. Until an announcement for a platform arrives (or a safety-poll interval passes), a
new long poll on drained platforms skips its first look and just waits: an idle fleet's
arriving polls cost no broker round trips. Work that comes back without an announcement
(a restored unacked message) waits for the safety poll, as a lost announcement does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.dispatch.wakeup_channel import LISTENER_CLIENT_NAME, WAKEUP_CHANNEL, decode_wakeup

logger = logging.getLogger(__name__)
RECONNECT_DELAY_S = 0.5
STOP_TIMEOUT_S = 2.0
T = TypeVar("T")


@dataclass(eq=False)
class Waiter:
    """One waiting long poll."""

    platforms: frozenset[str]
    capacity: int
    woken_for: set[str] = field(default_factory=set)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_woken(self) -> bool:
        return self.event.is_set()

    async def wait_woken(self, timeout_s: float, *, gone: asyncio.Event | None = None) -> bool:
        """Sleep until woken (True), or until ``timeout_s`` passes or ``gone`` is set (False)."""
        waits: set[asyncio.Task[bool]] = {asyncio.create_task(self.event.wait())}
        if gone is not None:
            waits.add(asyncio.create_task(gone.wait()))
        try:
            await asyncio.wait(waits, timeout=max(timeout_s, 0), return_when=FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return self.event.is_set() and not (gone is not None and gone.is_set())

    def take_wakeup(self) -> set[str]:
        """Consume the wake-up: the platforms it was for."""
        platforms, self.woken_for = self.woken_for, set()
        self.event.clear()
        return platforms


class WorkWaiters:
    """The waiting long polls of one process and the listener that wakes them."""

    def __init__(self, *, redis_url: str, safety_poll_s: float) -> None:
        self._redis_url = redis_url
        self._safety_poll_s = safety_poll_s
        self._waiters: dict[int, Waiter] = {}  # insertion order is arrival order
        self._arrivals = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self.is_listening = asyncio.Event()
        self._drained_at: dict[str, float] = {}  # platform -> when a look found it empty
        self._announced: dict[str, int] = {}  # platform -> announcements heard (a generation)
        self.subscriptions = 0  # how many times the listener (re)subscribed
        self.announcements = 0  # how many announcements it received

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(), name="work-wakeup-listener"),
                asyncio.create_task(self._poll_safely(), name="work-safety-poll"),
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        # Bounded: a listener stuck closing a dead Redis connection must not hold up shutdown.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        self._tasks = []
        self.is_listening.clear()

    # --- waiters --------------------------------------------------------------------------
    @contextlib.contextmanager
    def waiting(self, platforms: Collection[str], *, capacity: int) -> Iterator[Waiter]:
        """Register a waiter for the block; one woken but unserved passes its wake-up on."""
        key = next(self._arrivals)
        waiter = Waiter(platforms=frozenset(platforms), capacity=capacity)
        self._waiters[key] = waiter
        try:
            yield waiter
        finally:
            del self._waiters[key]
            if waiter.is_woken:
                self.wake({platform: 1 for platform in waiter.take_wakeup()})

    def is_drained(self, platforms: Collection[str]) -> bool:
        """Did a recent look find every one of these platforms empty, with nothing since?"""
        fresh_after = time.monotonic() - self._safety_poll_s
        return bool(platforms) and all(
            self._drained_at.get(platform, -1.0) > fresh_after for platform in platforms
        )

    async def look(
        self,
        platforms: Sequence[str],
        *,
        capacity: int,
        lease: Callable[[], Awaitable[list[T] | None]],
    ) -> list[T] | None:
        """Lease, and remember platforms found drained (unless announced meanwhile). A lease
        that did not look into the queues (``None``: its worker is paused) tells nothing."""
        generations = {platform: self._announced.get(platform, 0) for platform in platforms}
        leased = await lease()
        if leased is None:
            return None
        now = time.monotonic()
        for platform, generation in generations.items():
            if len(leased) < capacity and self._announced.get(platform, 0) == generation:
                self._drained_at[platform] = now
            else:
                self._drained_at.pop(platform, None)
        return leased

    def count_waiting(self, platform: str | None = None) -> int:
        waiters = tuple(self._waiters.values())  # one step: other threads may count too
        return sum(1 for w in waiters if platform is None or platform in w.platforms)

    def served(self, waiter: Waiter, *, leased: int) -> None:
        """After a woken waiter leased: a full batch means more may wait; wake the next."""
        if leased >= waiter.capacity:
            self.wake({platform: 1 for platform in waiter.platforms})

    def wake(self, counts: Mapping[str, int]) -> int:
        """Wake the oldest idle waiters of each platform until their capacities cover its
        count; returns how many were woken."""
        woken = 0
        for platform, count in counts.items():
            self._announced[platform] = self._announced.get(platform, 0) + 1
            self._drained_at.pop(platform, None)
            remaining = count
            for waiter in self._waiters.values():
                if remaining <= 0:
                    break
                if platform not in waiter.platforms:
                    continue
                if waiter.is_woken:  # already on its way to the broker
                    remaining -= waiter.capacity if platform in waiter.woken_for else 0
                    continue
                waiter.woken_for.add(platform)
                waiter.event.set()
                remaining -= waiter.capacity
                woken += 1
        return woken

    def wake_oldest_per_platform(self) -> int:
        """The safety poll: the oldest waiter of every platform looks into the queues."""
        self._drained_at.clear()
        covered: set[str] = set()
        woken = 0
        for waiter in self._waiters.values():
            fresh = waiter.platforms - covered
            if not fresh:
                continue
            covered |= waiter.platforms
            if not waiter.is_woken:
                waiter.woken_for |= fresh
                waiter.event.set()
                woken += 1
        return woken

    # --- background tasks -----------------------------------------------------------------
    async def _poll_safely(self) -> None:
        while True:
            await asyncio.sleep(self._safety_poll_s)
            self.wake_oldest_per_platform()

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
            except (RedisError, OSError) as exc:
                logger.warning("wake-up listener lost Redis (%s); reconnecting", exc)
            finally:
                self.is_listening.clear()
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _listen_once(self) -> None:
        client = aioredis.Redis.from_url(
            self._redis_url, client_name=LISTENER_CLIENT_NAME, socket_keepalive=True
        )
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(WAKEUP_CHANNEL)
                self.subscriptions += 1
                self.is_listening.set()
                # Announcements sent while nobody listened are gone: look, as a safety poll.
                self.wake_oldest_per_platform()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.announcements += 1
                        self.wake(decode_wakeup(message["data"]))
        finally:
            await client.aclose()
