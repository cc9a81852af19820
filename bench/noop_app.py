"""A bare Celery app with one no-op task: the baseline of ``python -m bench celery``.

Same broker and the same ``celeryconfig`` (late acks, reject on worker lost, prefetch 1,
events on) as the gateway's app, and nothing else: no ledger, no scraper, no ingest.
"""

from __future__ import annotations

from celery import Celery

NOOP_QUEUE = "bench.noop"

app = Celery("taxlien-bench")
app.config_from_object("celeryconfig")


@app.task(name="bench.noop", queue=NOOP_QUEUE, ignore_result=True)
def noop(n: int) -> None:
    """Does nothing: what the broker and a prefork worker cost per task."""
