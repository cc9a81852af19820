"""Moved to ``services.queues`` (queue names are below services/). Kept only for the two
modules whose owners switch their import when they next touch them: services/dispatch/lease_loop.py
and gateway_api/dispatch_metrics.py. Import ``services.queues`` everywhere else."""

from services.queues import (
    DEFAULT_PRIORITY,
    INGEST_QUEUE,
    MAINTENANCE_QUEUE,
    PRIORITIES,
    scrape_queue_name,
    scrape_queue_names,
)

__all__ = [
    "DEFAULT_PRIORITY",
    "INGEST_QUEUE",
    "MAINTENANCE_QUEUE",
    "PRIORITIES",
    "scrape_queue_name",
    "scrape_queue_names",
]
