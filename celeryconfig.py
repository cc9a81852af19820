"""Celery settings. Defaults every task relies on live here once; tasks set only what differs.

Read by ``tasks.app`` through ``config_from_object``; values come from the settings object.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from services.dispatch.envelopes import SCRAPE_TASK_NAME
from services.queues import INGEST_QUEUE, MAINTENANCE_QUEUE
from settings import get_settings

_settings = get_settings()

broker_url = _settings.celery_broker_url
broker_connection_retry_on_startup = True
# Each /internal/work leasing pass holds one pooled connection; long polls hold them longer.
broker_pool_limit = 50
# Results are kept only for tasks that ask (ignore_result=False), e.g. ingest outcomes.
result_backend = _settings.cache_url
result_expires = 3600
task_ignore_result = True

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# A task is acknowledged only once it has finished, and handed back if its process dies.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_time_limit = _settings.task_time_limit_s
task_soft_time_limit = max(_settings.task_time_limit_s - 30, 5)
worker_cancel_long_running_tasks_on_connection_loss = True
# Warm shutdown hands unfinished late-ack tasks back to the broker instead of waiting forever.
worker_soft_shutdown_timeout = 10.0
worker_concurrency = _settings.worker_concurrency

# Flower reads the workers' task events. No "task-sent" event per publish: every scrape task
# publishes its result, so it would add an event publish to each of the hottest path's tasks,
# and Flower shows a task from its first worker event anyway.
worker_send_task_events = True
task_send_sent_event = False

# Scrape queues (scrape.{platform}.p{priority}) are data: created on first publish.
task_create_missing_queues = True
# Each queue has its own direct exchange, as Celery gives the scrape queues it creates on demand.
task_queues = tuple(
    Queue(name, Exchange(name), routing_key=name) for name in (INGEST_QUEUE, MAINTENANCE_QUEUE)
)
task_default_queue = MAINTENANCE_QUEUE
# The worker's main process records a scrape run it cancels on a broker connection loss
# before Celery's own bookkeeping, which fails when the result backend went down too.
task_annotations = {SCRAPE_TASK_NAME: {"Request": "tasks.run_leases:ScrapeRequest"}}
task_routes = {
    "ingest.*": {"queue": INGEST_QUEUE},
    "maintenance.*": {"queue": MAINTENANCE_QUEUE},
}

if _settings.is_redis_broker:
    broker_transport_options = {
        # Longer than the longest task, or Redis delivers a running task a second time.
        "visibility_timeout": _settings.visibility_timeout_s,
        # A worker consuming several queues drains them in the order it lists them.
        "queue_order_strategy": "priority",
    }
else:
    # The broker confirms each publish, so "published" in the ledger means the broker has it.
    broker_transport_options = {"confirm_publish": True}

beat_schedule: dict[str, dict[str, object]] = {}

# Dispatch (issue 3): re-publish what the broker lacks, reap lost leases. Each message expires
# after one interval, so ticks missed while no worker runs do not pile up.
_dispatch_interval_s = _settings.dispatch_job_interval_s
beat_schedule.update(
    {
        name: {
            "task": name,
            "schedule": _dispatch_interval_s,
            "options": {"expires": _dispatch_interval_s},
        }
        for name in (
            "maintenance.republish_unpublished",
            "maintenance.republish_due_retries",
            "maintenance.republish_vanished",
            "maintenance.reap_leases",
        )
    }
)

# Accepted results the broker lost are sent again from the result outbox; same interval.
beat_schedule["maintenance.republish_result_outbox"] = {
    "task": "maintenance.republish_result_outbox",
    "schedule": _dispatch_interval_s,
    "options": {"expires": _dispatch_interval_s},
}
