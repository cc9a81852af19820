"""Group commit on the event loop: calls that arrive while a group is being written wait and
are written together, in one trip to the threadpool and one transaction.

Nothing waits for a timer. A call that finds no writer starts one at once, so a quiet gateway
answers as before; under load the calls queue behind the writer and form the next group. One
writer is the cheapest (every extra thread contends for the GIL), so a second starts only when
every writer has been on its group for ``stall_s`` (a row lock held elsewhere, say): one slow
group does not hold up every call of the process.

The writer function returns one answer per call, in order: a value, or the exception that
call alone would have raised. A group that fails as a whole raises; its callers get that
error, unless ``split_on`` says the failure came from the calls themselves (a row lock held
elsewhere, a deadlock): then each call is written again alone, in a task of its own (at most
``max_alone`` at once), and each caller gets its answer as soon as its own write is done. The
writer goes back to the queue meanwhile: a call waiting for a row held elsewhere holds up
only itself.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from fastapi.concurrency import run_in_threadpool

Call = TypeVar("Call")
Answer = TypeVar("Answer")


class GroupCommit(Generic[Call, Answer]):
    def __init__(
        self,
        write_group: Callable[[list[Call]], Sequence[Answer | Exception]],
        *,
        max_group: int,
        max_writers: int,
        stall_s: float,
        split_on: Callable[[Exception], bool] = lambda _: False,
        max_alone: int = 8,
    ) -> None:
        self._write_group = write_group
        self._max_group = max_group
        self._max_writers = max_writers
        self._stall_s = stall_s
        self._split_on = split_on
        self._alone_slots = asyncio.Semaphore(max_alone)
        self._alone: set[asyncio.Task[None]] = set()
        self._waiting: list[tuple[Call, asyncio.Future[Answer]]] = []
        # Each writer, and when the group it is writing was handed to the threadpool.
        self._writers: dict[asyncio.Task[None], float] = {}

    async def submit(self, call: Call) -> Answer:
        """Write ``call`` with whatever else is waiting; its answer, or its error raised.

        A caller that goes away does not take its call back: it is written all the same, as a
        request already handed to the threadpool would be.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._waiting.append((call, future))
        if self._wants_writer(loop.time()):
            # A context of its own: the writer serves every caller, not the one that started it
            # (its log lines must not carry that request's id).
            writer = loop.create_task(self._write_waiting(), context=contextvars.Context())
            self._writers[writer] = loop.time()
            writer.add_done_callback(self._forget_writer)  # also when cancelled before starting
        return await future

    def _wants_writer(self, now: float) -> bool:
        if len(self._writers) >= self._max_writers:
            return False
        return all(now - since >= self._stall_s for since in self._writers.values())

    def _forget_writer(self, writer: asyncio.Task[None]) -> None:
        self._writers.pop(writer, None)

    async def _write_waiting(self) -> None:
        loop, me = asyncio.get_running_loop(), asyncio.current_task()
        assert me is not None
        try:
            while self._waiting:
                self._writers[me] = loop.time()
                await self._write_group_of_waiting()
        finally:
            # In the step that found nothing waiting: a call submitted after it sees no writer
            # and starts one (left to the done callback, it would see this one and wait).
            self._writers.pop(me, None)

    async def _write_group_of_waiting(self) -> None:
        group = self._waiting[: self._max_group]
        del self._waiting[: self._max_group]
        try:
            answers = await run_in_threadpool(self._write_group, [call for call, _ in group])
            for (_, future), answer in zip(group, answers, strict=True):
                _settle(future, answer)
        except Exception as exc:  # noqa: BLE001  each caller of the group gets it raised
            if len(group) > 1 and self._split_on(exc):
                for call, future in group:
                    self._start_alone(call, future)
                group = []  # each call's own task answers it now
            else:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
        finally:  # cancelled with the loop: no caller is left waiting forever
            for _, future in group:
                if not future.done():
                    future.cancel()

    def _start_alone(self, call: Call, future: asyncio.Future[Answer]) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._write_alone(call, future), context=contextvars.Context())
        self._alone.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._alone.discard)

    async def _write_alone(self, call: Call, future: asyncio.Future[Answer]) -> None:
        try:
            async with self._alone_slots:
                [answer] = await run_in_threadpool(self._write_group, [call])
            _settle(future, answer)
        except Exception as exc:  # noqa: BLE001  its caller gets it raised
            _settle(future, exc)
        finally:  # cancelled with the loop
            if not future.done():
                future.cancel()


def _settle(future: asyncio.Future[Answer], answer: Answer | Exception) -> None:
    if future.done():  # its caller went away
        return
    if isinstance(answer, Exception):
        future.set_exception(answer)
    else:
        future.set_result(answer)
