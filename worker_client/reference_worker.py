"""The reference worker: leases tasks, scrapes them, uploads each page, sends results in batches.

On SIGTERM (or a ``shutdown`` command) it stops leasing, lets running tasks finish, sends
their results, and fails (retryable) any lease it could not finish, so nothing waits for a
lease to run out.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from scrapers.registry import ScrapeFailed
from worker_client.client import GatewayClient
from worker_client.demo_pages import ScrapedPage, scrape_task
from worker_client.errors import GatewayError, OutcomeUnknown
from worker_client.heartbeat import HeartbeatLoop
from worker_client.lease_keeper import LeaseKeeper
from worker_client.process_load import CpuMeter, RecentEvents, read_memory_percent
from worker_client.result_batcher import ResultBatcher
from worker_client.wire import HeartbeatStatus, ResultItem, WorkTask

logger = logging.getLogger(__name__)
SHUTDOWN_REASON = "other"  # the contract has no reason of its own for "worker stopping"


@dataclass(frozen=True)
class WorkerOptions:
    platforms: tuple[str, ...]
    concurrency: int = 4
    poll_wait_s: float = 20.0
    batch_size: int = 50
    batch_max_wait_s: float = 2.0
    heartbeat_interval_s: float = 30.0
    extend_every_s: float = 60.0
    drain_timeout_s: float = 60.0
    error_backoff_s: float = 2.0


class ReferenceWorker:
    def __init__(self, client: GatewayClient, options: WorkerOptions) -> None:
        self.client = client
        self.options = options
        self.stopping = threading.Event()
        self.paused = threading.Event()
        self._slot_freed = threading.Event()
        self._in_flight = 0
        self._is_leasing_paused = False
        self._lock = threading.Lock()
        self._completed = RecentEvents()
        self._failed = RecentEvents()
        self._cpu = CpuMeter()
        self.keeper = LeaseKeeper(client, extend_every_s=options.extend_every_s)
        self.batcher = ResultBatcher(
            client,
            self.keeper,
            batch_size=options.batch_size,
            max_wait_s=options.batch_max_wait_s,
            on_settled=self._count_settled,
        )
        self.heartbeat = HeartbeatLoop(
            client,
            read_status=self.read_status,
            on_command=self.carry_out,
            interval_s=options.heartbeat_interval_s,
        )

    def request_stop(self) -> None:
        """Graceful: stop leasing, finish what runs, give back the rest."""
        if not self.stopping.is_set():
            logger.info("stopping: finishing running tasks, then exiting")
        self.stopping.set()
        self._slot_freed.set()

    def carry_out(self, command: str) -> None:
        if command == "pause":
            self.paused.set()
        elif command == "resume":
            self.paused.clear()
        elif command == "shutdown":
            self.request_stop()
        self._slot_freed.set()

    def read_status(self) -> HeartbeatStatus:
        held = self.keeper.held()
        return HeartbeatStatus(
            active_tasks=len(held),
            task_ids=[lease.task_id for lease in held],
            completed_last_minute=self._completed.count(),
            failed_last_minute=self._failed.count(),
            platforms=list(self.options.platforms),
            cpu_percent=self._cpu.read_percent(),
            memory_percent=read_memory_percent(),
        )

    def run(self) -> int:
        """Work until asked to stop; returns the process exit code."""
        self.heartbeat.start()
        self.keeper.start()
        self.batcher.start()
        logger.info(
            "worker %s leasing %s with %d slots",
            self.client.config.worker_id,
            ",".join(self.options.platforms),
            self.options.concurrency,
        )
        pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="task")
        try:
            while not self.stopping.is_set():
                for task in self._lease_next():
                    self._start(pool, task)
            is_drained = self._wait_for_running_tasks()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a stuck scraper is not waited for
        return self._finish(is_drained)

    def has_stuck_tasks(self) -> bool:
        """Tasks still running after the drain timeout (their leases were given back)."""
        return self._running() > 0

    def _lease_next(self) -> list[WorkTask]:
        free = self.options.concurrency - self._running()
        if self.paused.is_set() != self._is_leasing_paused:
            # Logged here, not when the command comes: a poll under way may still bring tasks.
            self._is_leasing_paused = self.paused.is_set()
            logger.info("leasing %s", "paused" if self._is_leasing_paused else "resumed")
        if self.paused.is_set() or free <= 0:
            self._slot_freed.wait(1.0)
            self._slot_freed.clear()
            return []
        try:
            batch = self.client.lease(
                self.options.platforms, capacity=free, wait_s=self.options.poll_wait_s
            )
        except OutcomeUnknown as exc:
            # Tasks of the lost answer stay leased to this worker id until their leases run
            # out (later while heartbeats report active tasks): the contract cannot name them.
            logger.warning("lease answer lost, polling again: %s", exc)
            return []
        except GatewayError as exc:
            logger.warning("leasing failed: %s", exc)
            self.stopping.wait(self.options.error_backoff_s)
            return []
        if not batch.tasks and batch.retry_after:
            self.stopping.wait(min(batch.retry_after, self.options.poll_wait_s))
        for task in batch.tasks:
            self.keeper.hold(task)
        return batch.tasks

    def _start(self, pool: ThreadPoolExecutor, task: WorkTask) -> None:
        if self.stopping.is_set():  # leased by the poll that was running when told to stop
            self._give_back(task, "worker stopping before the task started")
            return
        with self._lock:
            self._in_flight += 1
        pool.submit(self._run_task, task)

    def _running(self) -> int:
        with self._lock:
            return self._in_flight

    def _run_task(self, task: WorkTask) -> None:
        try:
            self._scrape_and_queue(task)
        except ScrapeFailed as exc:
            self._report_failure(task, exc.reason, exc.message, retry=exc.is_retryable)
        except GatewayError as exc:
            self._report_failure(task, "network_error", f"gateway: {exc}", retry=True)
        except Exception as exc:
            logger.exception("task %s: the scraper raised", task.task_id)
            self._report_failure(task, "parser_bug", repr(exc)[:500], retry=True)
        finally:
            with self._lock:
                self._in_flight -= 1
            self._slot_freed.set()

    def _scrape_and_queue(self, task: WorkTask) -> None:
        scraped = scrape_task(task)
        stored = self.client.upload_raw_file(
            io.BytesIO(scraped.page),
            filename=f"{task.task_id}.html",
            content_type="text/html",
            metadata=_raw_file_metadata(task),
        )
        self.batcher.add(task, _result_item(task, scraped, stored.sha256))

    def _report_failure(self, task: WorkTask, reason: str, message: str, *, retry: bool) -> None:
        self._failed.record()
        try:
            self.client.fail(
                task.task_id,
                task.lease_token,
                reason=reason,
                message=message,
                retry_suggested=retry,
            )
        except GatewayError as exc:  # the lease runs out instead, and that is a failed attempt
            logger.warning("could not report task %s as failed: %s", task.task_id, exc)
        self.keeper.release(task.task_id)

    def _give_back(self, task: WorkTask, message: str) -> None:
        try:
            self.client.fail(
                task.task_id, task.lease_token, reason=SHUTDOWN_REASON, message=message
            )
        except GatewayError as exc:
            logger.warning("could not give back task %s: %s", task.task_id, exc)
        self.keeper.release(task.task_id)

    def _count_settled(self, completed: int, failed: int) -> None:
        self._completed.record(completed)
        self._failed.record(failed)

    def _wait_for_running_tasks(self) -> bool:
        deadline = time.monotonic() + self.options.drain_timeout_s
        while self._running() and time.monotonic() < deadline:
            self._slot_freed.wait(0.2)
            self._slot_freed.clear()
        return self._running() == 0

    def _finish(self, is_drained: bool) -> int:
        self.batcher.stop()
        is_sent = self.batcher.flush()
        for lease in self.keeper.held():  # unfinished, or results the gateway did not take
            self._give_back(lease.task, "worker stopped before the task finished")
        self.keeper.stop()
        self.heartbeat.stop()
        self.heartbeat.beat()  # the registry shows it idle at once
        logger.info("stopped (drained: %s, results sent: %s)", is_drained, is_sent)
        return 0 if is_drained and is_sent else 1


def _raw_file_metadata(task: WorkTask) -> dict[str, str]:
    return {
        "task_id": str(task.task_id),
        "platform": task.platform,
        "state": task.target.state,
        "county": task.target.county,
        "parcel_id": task.target.parcel_id,
        "content_type": "text/html",
        "scraped_at": datetime.now(UTC).isoformat(),
    }


def _result_item(task: WorkTask, scraped: ScrapedPage, page_sha256: str) -> ResultItem:
    return ResultItem(
        task_id=task.task_id,
        parcel_id=task.target.parcel_id,
        platform=task.platform,
        state=task.target.state,
        county=task.target.county,
        data=dict(scraped.data),
        scraped_at=datetime.now(UTC),
        parse_duration_ms=scraped.parse_duration_ms,
        raw_html_hash=page_sha256,
    )
