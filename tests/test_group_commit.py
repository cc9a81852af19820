"""``GroupCommit``: calls that arrive while a group is being written form the next group, and
each caller gets its own answer or error. The writer here is a plain function that records
the groups it is given; a gate holds a group in the "database" until the test lets it go."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from gateway_api.group_commit import GroupCommit


class GatedWriter:
    """Answers ``n`` with ``n * 10``, a negative ``n`` with its error; holds each group until
    ``release`` (every group passes when ``gate`` is set)."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = threading.Event()
        self.writing = threading.Semaphore(0)  # released once per group entered
        self.concurrent = 0
        self.most_concurrent = 0
        self._lock = threading.Lock()

    def __call__(self, calls: list[int]) -> list[int | Exception]:
        with self._lock:
            self.groups.append(list(calls))
            self.concurrent += 1
            self.most_concurrent = max(self.most_concurrent, self.concurrent)
        self.writing.release()
        try:
            assert self.gate.wait(timeout=30)
            return [ValueError(f"call {n}") if n < 0 else n * 10 for n in calls]
        finally:
            with self._lock:
                self.concurrent -= 1


async def entered(writer: GatedWriter) -> None:
    """Until the writer has entered one more group."""
    assert await asyncio.to_thread(writer.writing.acquire, True, 30)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=60))


def test_calls_that_arrive_during_a_write_are_written_together() -> None:
    writer = GatedWriter()
    commit: GroupCommit[int, int] = GroupCommit(writer, max_group=500, max_writers=4, stall_s=60)

    async def scenario() -> None:
        first = asyncio.create_task(commit.submit(1))
        await entered(writer)
        later = [asyncio.create_task(commit.submit(n)) for n in range(2, 7)]
        await asyncio.sleep(0)  # let them queue behind the first group
        writer.gate.set()
        assert await first == 10
        assert await asyncio.gather(*later) == [20, 30, 40, 50, 60]

    run(scenario)
    assert writer.groups == [[1], [2, 3, 4, 5, 6]]
    assert writer.most_concurrent == 1  # no group stalled for 60 s: one writer


def test_a_group_is_capped_and_the_rest_waits_for_the_next() -> None:
    writer = GatedWriter()
    commit: GroupCommit[int, int] = GroupCommit(writer, max_group=2, max_writers=1, stall_s=0)

    async def scenario() -> None:
        first = asyncio.create_task(commit.submit(1))
        await entered(writer)
        later = [asyncio.create_task(commit.submit(n)) for n in range(2, 7)]
        await asyncio.sleep(0)
        writer.gate.set()
        await asyncio.gather(first, *later)

    run(scenario)
    assert writer.groups == [[1], [2, 3], [4, 5], [6]]


def test_a_call_refused_in_its_group_raises_for_its_caller_alone() -> None:
    writer = GatedWriter()
    writer.gate.set()
    commit: GroupCommit[int, int] = GroupCommit(writer, max_group=500, max_writers=1, stall_s=60)

    async def scenario() -> None:
        answers = await asyncio.gather(
            *(commit.submit(n) for n in (1, -2, 3)), return_exceptions=True
        )
        assert answers[0] == 10 and answers[2] == 30
        assert isinstance(answers[1], ValueError) and str(answers[1]) == "call -2"

    run(scenario)


def test_a_group_that_fails_as_a_whole_raises_for_each_of_its_callers() -> None:
    def database_down(calls: list[int]) -> list[int | Exception]:
        raise ConnectionError("the database is down")

    commit: GroupCommit[int, int] = GroupCommit(
        database_down, max_group=500, max_writers=1, stall_s=60
    )

    async def scenario() -> None:
        answers = await asyncio.gather(
            *(commit.submit(n) for n in range(3)), return_exceptions=True
        )
        assert [type(answer) for answer in answers] == [ConnectionError] * 3

    run(scenario)


def test_a_stalled_group_lets_a_second_writer_start() -> None:
    writer = GatedWriter()
    commit: GroupCommit[int, int] = GroupCommit(writer, max_group=500, max_writers=2, stall_s=0)

    async def scenario() -> None:
        first = asyncio.create_task(commit.submit(1))
        await entered(writer)
        second = asyncio.create_task(commit.submit(2))
        await entered(writer)  # written while the first group is still held
        third = asyncio.create_task(commit.submit(3))  # two writers at most: it waits
        await asyncio.sleep(0)
        writer.gate.set()
        assert list(await asyncio.gather(first, second, third)) == [10, 20, 30]

    run(scenario)
    assert writer.groups == [[1], [2], [3]]
    assert writer.most_concurrent == 2


def test_a_caller_that_goes_away_does_not_take_its_call_back() -> None:
    writer = GatedWriter()
    commit: GroupCommit[int, int] = GroupCommit(writer, max_group=500, max_writers=1, stall_s=60)

    async def scenario() -> None:
        first = asyncio.create_task(commit.submit(1))
        await entered(writer)
        gone = asyncio.create_task(commit.submit(2))
        staying = asyncio.create_task(commit.submit(3))
        await asyncio.sleep(0)
        gone.cancel()
        writer.gate.set()
        assert await first == 10 and await staying == 30
        with pytest.raises(asyncio.CancelledError):
            await gone

    run(scenario)
    assert writer.groups == [[1], [2, 3]]  # the call was written all the same


def test_a_call_made_as_the_last_writer_finishes_is_written() -> None:
    """The caller woken by its answer submits again at once, before the finished writer's
    task is done: that call must start a writer of its own, not wait for one that has left."""
    writer = GatedWriter()
    writer.gate.set()
    commit: GroupCommit[int, int] = GroupCommit(writer, max_group=500, max_writers=4, stall_s=60)

    async def scenario() -> None:
        assert await commit.submit(1) == 10
        assert await commit.submit(2) == 20

    run(scenario)
    assert writer.groups == [[1], [2]]


class RowHeldElsewhere(Exception):
    """What a group's write raises when one of its rows is locked by someone else."""


def test_a_group_held_up_by_one_call_answers_the_others_while_that_call_still_waits() -> None:
    row_2_released = threading.Event()
    written: list[list[int]] = []

    def write(calls: list[int]) -> list[int | Exception]:
        written.append(list(calls))
        if 2 in calls:
            if len(calls) > 1:
                raise RowHeldElsewhere("call 2's row")
            assert row_2_released.wait(timeout=30)  # alone, call 2 waits for its row
        return [ValueError("call 3") if n == 3 else n * 10 for n in calls]

    commit: GroupCommit[int, int] = GroupCommit(
        write,
        max_group=500,
        max_writers=1,
        stall_s=60,
        split_on=lambda exc: isinstance(exc, RowHeldElsewhere),
    )

    async def scenario() -> None:
        first, second, third = (asyncio.create_task(commit.submit(n)) for n in (2, 1, 3))
        assert await second == 10  # answered while call 2 is still held
        with pytest.raises(ValueError, match="call 3"):
            await third
        assert not first.done()
        # The writer is free meanwhile: a new call is written at once.
        assert await commit.submit(4) == 40
        row_2_released.set()
        assert await first == 20

    run(scenario)
    assert written[0] == [2, 1, 3]
    assert sorted(written[1:4]) == [[1], [2], [3]] and written[4] == [4]
