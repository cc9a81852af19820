"""The native Celery path end to end, against a bare no-op Celery task, same broker, same run.

Ledger path: 5,000 ``demo`` tasks are enqueued (ledger rows, published to
``scrape.demo.p3``), then a scrape worker (2 prefork children) starts consuming them; each
task claims its ledger row, runs the demo scraper and sends its one-item result to the
``ingest`` queue, where the service worker batches the results into chunks and marks the tasks
succeeded. Timed from the moment the scrape worker starts consuming until the ledger holds
every task succeeded.

Baseline: 5,000 messages of a no-op task, queued the same way, drained by a worker of the same
concurrency, prefetch and acknowledgement settings. Timed from the moment it starts consuming
until its queue is empty.

Both workers are started on an idle queue first and told to consume the real one with a
broadcast, so worker start-up is outside both timings.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from tempfile import mkdtemp

from celery import Celery

from tests.celery_workers import WorkerProcess, start_worker
from tests.dispatch_helpers import queue_depth
from tests.waiting import wait_for

TASKS = 5_000
CONCURRENCY = 2
IDLE_QUEUE = "bench.idle"


def run() -> None:
    log_dir = Path(mkdtemp(prefix="taxlien-bench-celery-"))
    sys.stdout.write(
        f"Celery path (bench celery): {TASKS:,} tasks, {CONCURRENCY} prefork children\n"
    )
    baseline_rate = _measure_noop(log_dir)
    ledger_rate, mean_chunk = _measure_ledger_path(log_dir)
    sys.stdout.write(
        f"  {'bare no-op Celery task (baseline)':<48} {baseline_rate:9.0f} tasks/s\n"
        f"  {'ledger-tracked demo scrape + batched ingest':<48} {ledger_rate:9.0f} tasks/s\n"
        f"  {'ratio (ledger path / bare Celery)':<48} {ledger_rate / baseline_rate:9.2f}\n"
        f"  {'mean ingest chunk (items per chunk)':<48} {mean_chunk:9.1f}\n"
        f"  worker logs in {log_dir}\n"
    )


def _measure_noop(log_dir: Path) -> float:
    from bench.noop_app import NOOP_QUEUE, app, noop

    with app.producer_or_acquire() as producer:
        for n in range(TASKS):
            noop.apply_async(args=[n], producer=producer)
    worker = start_worker([IDLE_QUEUE], log_dir=log_dir, concurrency=CONCURRENCY,
                          app_module="bench.noop_app")  # fmt: skip
    try:
        started = _start_consuming(app, worker, NOOP_QUEUE)
        wait_for(
            lambda: queue_depth("", queue=NOOP_QUEUE) == 0,
            timeout_s=600,
            interval_s=0.05,
            what="the no-op queue to drain",
        )
        return TASKS / (time.perf_counter() - started)
    finally:
        worker.stop()


def _measure_ledger_path(log_dir: Path) -> tuple[float, float]:
    from services.dispatch.broker_client import enqueue_and_publish
    from services.dispatch.enqueue import EnqueueRequest
    from services.ingest.metrics import read_ingest_counts
    from services.metrics_redis import metrics_redis
    from services.queues import INGEST_QUEUE, scrape_queue_name
    from tasks.app import app

    requests = [EnqueueRequest("demo", "FL", "dixie", f"CEL-{n:06d}") for n in range(TASKS)]
    for start in range(0, TASKS, 1000):
        enqueue_and_publish(requests[start : start + 1000])
    ingest = start_worker([INGEST_QUEUE], log_dir=log_dir, concurrency=CONCURRENCY)
    scrape = start_worker([IDLE_QUEUE], log_dir=log_dir, concurrency=CONCURRENCY)
    try:
        started = _start_consuming(app, scrape, scrape_queue_name("demo", 3))
        wait_for(
            lambda: _succeeded() == TASKS,
            timeout_s=600,
            interval_s=0.05,
            what="every demo task to succeed",
        )
        rate = TASKS / (time.perf_counter() - started)
    finally:
        scrape.stop()
        ingest.stop()
    counts = read_ingest_counts(metrics_redis())
    return rate, counts.chunk_items / max(counts.chunks, 1)


def _start_consuming(app: Celery, worker: WorkerProcess, queue: str) -> float:
    started = time.perf_counter()
    app.control.add_consumer(queue, destination=[worker.name], reply=True)
    return started


def _succeeded() -> int:
    from sqlalchemy import text

    from db.session import session_scope

    with session_scope() as session:
        query = text("SELECT count(*) FROM scrape_tasks WHERE status = 'succeeded'")
        return int(session.scalar(query) or 0)
