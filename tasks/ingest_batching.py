"""The worker-side batching of ``ingest.parcel_results`` messages.

Celery lets a task replace how its messages are handled once received (its ``Strategy``).
This one holds the messages instead of running each in a pool child: when the held messages
carry ``ingest_batch_max_items`` items, or the oldest has waited ``ingest_batch_max_wait_s``,
they go to one pool child together (``tasks.ingest.run_ingest_batch``), which writes them as
one chunk. Everything here runs in the worker's main process, on its event loop: the message
handler, the flush timer and the pool's callbacks, so none of it needs a lock.

Acknowledgement follows the chunk's commit, per message. A chunk the database could not take
(an outage) is held and tried again later; a chunk that killed its child or failed is tried
again message by message, so one bad message cannot hold back the others, and a message that
keeps killing children is recorded in ``ingest_rejects`` (quarantine). A message is never
acknowledged before its items are written or recorded.

Prefetch: with a prefetch multiplier of 1 the broker would give the worker only a message or
two at a time. Each held message raises the worker's prefetch by one (as Celery does for eta
tasks), up to a bound, and lowers it again once acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task, signals
from celery.utils.imports import symbol_by_name
from celery.worker.request import Request, create_request_cls
from celery.worker.strategy import hybrid_to_proto2, proto1_to_proto2
from kombu.message import Message

from settings import get_settings
from tasks.ingest import BatchStatus, HeldMessage, run_ingest_batch

logger = logging.getLogger(__name__)

# Items held at most (in chunks' worth per child) while raising the prefetch: beyond it the
# broker's window stops growing, which bounds the worker's memory.
MAX_HELD_BATCHES_PER_CHILD = 3
RETRY_HELD_AFTER_S = 5.0  # a batch handed back (database down, child lost) waits this long


@dataclass(eq=False)
class _Held:
    request: Request
    item_count: int
    received_at: float
    raised_prefetch: bool
    crashes: int = 0


class IngestBatcher:
    """Holds received ingest messages and writes them in batches through the pool."""

    def __init__(self, task: Task, app: Celery, consumer: Any) -> None:
        settings = get_settings()
        self._task, self._app, self._consumer = task, app, consumer
        self._pool = consumer.pool
        self._max_items = settings.ingest_batch_max_items
        self._max_wait_s = settings.ingest_batch_max_wait_s
        self._max_crashes = settings.ingest_max_crashes
        self._hard_limit_s = app.conf.task_time_limit
        self._soft_limit_s = app.conf.task_soft_time_limit
        self._children = max(int(getattr(self._pool, "limit", 1) or 1), 1)
        self._max_held_items = self._children * MAX_HELD_BATCHES_PER_CHILD * self._max_items
        self._waiting: deque[_Held] = deque()  # received, not yet in a batch
        self._waiting_items = 0
        self._alone: deque[_Held] = deque()  # tried again one message at a time
        self._held_items = 0  # items held in all (waiting, alone, in flight)
        self._in_flight = 0  # batches in pool children
        self._timer_started = False
        self._make_request = create_request_cls(
            symbol_by_name(task.Request), task, self._pool, consumer.hostname,
            consumer.event_dispatcher, app=app,
        )  # fmt: skip

    # --- receiving ---------------------------------------------------------------------------

    def on_message(
        self, message: Message, body: Any, ack: Any, reject: Any, callbacks: Any, **_: Any
    ) -> None:
        request = self._request_of(message, body, ack, reject)
        if (request.expires or request.id in self._consumer.controller.state.revoked) and (
            request.revoked()
        ):
            return
        signals.task_received.send(sender=self._consumer, request=request)
        raised = self._held_items < self._max_held_items
        if raised:
            self._consumer.qos.increment_eventually()
        held = _Held(request, _item_count(request), time.monotonic(), raised)
        self._held_items += held.item_count
        self._waiting.append(held)
        self._waiting_items += held.item_count
        if not self._timer_started:
            self._consumer.timer.call_repeatedly(self._max_wait_s / 2, self._on_tick)
            self._timer_started = True
        if self._waiting_items >= self._max_items:
            self._dispatch()

    def _request_of(self, message: Message, body: Any, ack: Any, reject: Any) -> Request:
        # Message protocols as Celery's own strategy reads them.
        if body is None and "args" not in message.payload:
            body, headers, decoded, utc = (
                message.body, message.headers, False, self._app.uses_utc_timezone(),
            )  # fmt: skip
        elif "args" in message.payload:
            body, headers, decoded, utc = hybrid_to_proto2(message, message.payload)
        else:
            body, headers, decoded, utc = proto1_to_proto2(message, body)
        return self._make_request(
            message, on_ack=ack, on_reject=reject, app=self._app,
            hostname=self._consumer.hostname, eventer=self._consumer.event_dispatcher,
            task=self._task, connection_errors=self._consumer.connection_errors,
            body=body, headers=headers, decoded=decoded, utc=utc,
        )  # fmt: skip

    def _on_tick(self) -> None:
        self._dispatch()

    # --- dispatching ---------------------------------------------------------------------------

    def _is_batch_ready(self) -> bool:
        """A full chunk's worth of items is waiting, or the oldest has waited long enough."""
        if not self._waiting:
            return False
        if self._waiting_items >= self._max_items:
            return True
        return time.monotonic() - self._waiting[0].received_at >= self._max_wait_s

    def _dispatch(self) -> None:
        while self._in_flight < self._children and (self._alone or self._is_batch_ready()):
            if self._alone:
                batch = [self._alone.popleft()]
            else:
                batch = [self._take_waiting()]
                items = batch[0].item_count
                while self._waiting and items + self._waiting[0].item_count <= self._max_items:
                    items += self._waiting[0].item_count
                    batch.append(self._take_waiting())
            self._send_to_pool(batch)

    def _take_waiting(self) -> _Held:
        held = self._waiting.popleft()
        self._waiting_items -= held.item_count
        return held

    def _send_to_pool(self, batch: list[_Held]) -> None:
        quarantine = None
        if batch[0].crashes >= self._max_crashes:
            quarantine = (
                f"killed its ingest worker child or ran past the time limit {batch[0].crashes}"
                " times; recorded instead of tried again"
            )
        payload = [_held_message(held.request) for held in batch]
        self._in_flight += 1
        started = time.monotonic()
        self._pool.apply_async(
            run_ingest_batch,
            args=(payload, quarantine),
            callback=lambda status: self._on_batch_done(batch, status, started),
            error_callback=lambda exc_info: self._on_batch_lost(batch, exc_info),
            timeout=self._hard_limit_s,
            soft_timeout=self._soft_limit_s,
        )

    # --- outcomes ------------------------------------------------------------------------------

    def _on_batch_done(self, batch: list[_Held], status: str, started: float) -> None:
        self._in_flight -= 1
        if status == BatchStatus.OK:
            runtime = time.monotonic() - started
            for held in batch:
                held.request.acknowledge()
                # Flower's view: one event per message (received and started would triple the
                # event traffic of a worker that takes hundreds of messages a second).
                held.request.send_event(
                    "task-succeeded", name=held.request.name, result="written", runtime=runtime
                )
                self._release(held)
        elif status == BatchStatus.UNAVAILABLE:
            self._hold_for_later(batch, counted=False)
        else:
            self._hold_for_later(batch, counted=True)
        self._dispatch()

    def _on_batch_lost(self, batch: list[_Held], exc_info: Any) -> None:
        """The child died (killed, out of memory) or passed the hard time limit."""
        self._in_flight -= 1
        logger.error(
            "ingest batch of %d messages lost its child (%s); each is tried again alone",
            len(batch), getattr(exc_info, "exception", exc_info),
        )  # fmt: skip
        self._hold_for_later(batch, counted=True)
        self._dispatch()

    def _hold_for_later(self, batch: list[_Held], *, counted: bool) -> None:
        for held in batch:
            held.crashes += counted
        target = self._alone if counted or len(batch) == 1 else self._waiting
        self._consumer.timer.call_after(
            RETRY_HELD_AFTER_S, lambda: self._requeue_held(batch, target)
        )

    def _requeue_held(self, batch: list[_Held], target: deque[_Held]) -> None:
        if target is self._alone:
            target.extend(batch)
        else:  # first in line again
            target.extendleft(reversed(batch))
            self._waiting_items += sum(held.item_count for held in batch)
        self._dispatch()

    def _release(self, held: _Held) -> None:
        self._held_items -= held.item_count
        if held.raised_prefetch:
            self._consumer.qos.decrement_eventually()


def _item_count(request: Request) -> int:
    items = request.args[0] if request.args else request.kwargs.get("items")
    return max(len(items), 1) if isinstance(items, list) else 1


def _held_message(request: Request) -> HeldMessage:
    items = request.args[0] if request.args else request.kwargs.get("items")
    headers = request.request_dict or {}
    return HeldMessage(
        message_id=str(request.id),
        items=items,
        request_id=headers.get("request_id"),
        wants_result=not request.ignore_result,
    )


def batching_strategy(task: Task, app: Celery, consumer: Any) -> Callable[..., None]:
    """The ``Strategy`` of ``ingest.parcel_results``: what the worker does with a message."""
    return IngestBatcher(task, app, consumer).on_message
