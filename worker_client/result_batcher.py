"""Results go to the gateway in batches; their tasks are completed once the batch is accepted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker_client.client import GatewayClient
from worker_client.errors import GatewayError
from worker_client.lease_keeper import LeaseKeeper
from worker_client.wire import ResultItem, WorkTask

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinishedTask:
    task: WorkTask
    item: ResultItem


class ResultBatcher:
    """Collects finished tasks; sends a batch when ``batch_size`` are waiting or the oldest has
    waited ``max_wait_s``. A batch the gateway could not take stays for the next try (results
    are idempotent, and the lease keeper keeps the leases alive meanwhile)."""

    def __init__(
        self,
        client: GatewayClient,
        keeper: LeaseKeeper,
        *,
        batch_size: int,
        max_wait_s: float,
        on_settled: Callable[[int, int], None],  # (completed, failed) per batch
    ) -> None:
        self.client = client
        self.keeper = keeper
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.on_settled = on_settled
        self._waiting: list[FinishedTask] = []
        self._oldest_at: float | None = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one batch in flight at a time
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="result-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops the background sending; ``flush`` sends what is left."""
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def add(self, task: WorkTask, item: ResultItem) -> None:
        with self._lock:
            self._waiting.append(FinishedTask(task, item))
            if self._oldest_at is None:
                self._oldest_at = time.monotonic()
            if len(self._waiting) >= self.batch_size:
                self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._waiting)

    def flush(self) -> bool:
        """Send everything waiting; False when the gateway could not take some of it."""
        while self.pending():
            if not self._send_one_batch():
                return False
        return True

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._seconds_until_due())
            self._wake.clear()
            if self._stopped.is_set():
                return
            if self._is_due():
                self._send_one_batch()

    def _seconds_until_due(self) -> float:
        with self._lock:
            if self._oldest_at is None:
                return self.max_wait_s
            return max(0.0, self._oldest_at + self.max_wait_s - time.monotonic())

    def _is_due(self) -> bool:
        with self._lock:
            if not self._waiting or self._oldest_at is None:
                return False
            waited = time.monotonic() - self._oldest_at
            return len(self._waiting) >= self.batch_size or waited >= self.max_wait_s

    def _take_batch(self) -> list[FinishedTask]:
        with self._lock:
            size = self.batch_size
            batch, self._waiting = self._waiting[:size], self._waiting[size:]
            self._oldest_at = time.monotonic() if self._waiting else None
            return batch

    def _give_back(self, batch: list[FinishedTask]) -> None:
        with self._lock:
            self._waiting = batch + self._waiting
            self._oldest_at = time.monotonic()

    def _send_one_batch(self) -> bool:
        with self._send_lock:
            batch = self._take_batch()
            if not batch:
                return True
            try:
                self._send(batch)
            except GatewayError as exc:
                logger.warning("results of %d task(s) not sent yet: %s", len(batch), exc)
                self._give_back(batch)
                return False
            return True

    def _send(self, batch: list[FinishedTask]) -> None:
        answer = self.client.submit_results([finished.item for finished in batch])
        refused = {int(error["index"]): str(error["reason"]) for error in answer.errors}
        accepted = [f for index, f in enumerate(batch) if index not in refused]
        for index, reason in refused.items():
            self._fail_refused(batch[index].task, reason)
        errors = []
        if accepted:
            outcome = self.client.complete_many(
                [(f.task.task_id, f.task.lease_token) for f in accepted]
            )
            errors = outcome.errors
        for error in errors:
            logger.warning("task %s not completed: %s %s", error.task_id, error.code, error.message)
        for finished in batch:
            self.keeper.release(finished.task.task_id)
        self.on_settled(len(accepted) - len(errors), len(refused))

    def _fail_refused(self, task: WorkTask, reason: str) -> None:
        # The gateway refused our own result: scraping again gives the same result.
        logger.error("result of task %s refused: %s", task.task_id, reason)
        try:
            self.client.fail(
                task.task_id,
                task.lease_token,
                reason="parser_bug",
                message=f"result refused by the gateway: {reason}",
                retry_suggested=False,
            )
        except GatewayError as exc:
            logger.warning("could not report task %s as failed: %s", task.task_id, exc)
