"""The Celery application shared by workers, beat and every publisher."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    beat_init,
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_process_init,
)

from db.session import configure_engine
from observability.logs import configure_logging
from observability.request_context import get_request_id, set_request_id
from settings import get_settings

app = Celery("taxlien")
app.config_from_object("celeryconfig")
app.conf.include = ["tasks.maintenance", "tasks.ingest", "tasks.scrape", "tasks.dispatch_jobs"]


@worker_process_init.connect
def _make_worker_engine(**_: Any) -> None:
    # Each prefork child gets its own pool; nothing opened in the parent crosses the fork.
    configure_engine("worker")


@beat_init.connect
def _make_beat_engine(**_: Any) -> None:
    configure_engine("beat")


@after_setup_logger.connect
def _use_structured_logs(**_: Any) -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, as_json=settings.log_json)


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = get_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@task_prerun.connect
def _restore_request_id(task: Any = None, **_: Any) -> None:
    set_request_id(getattr(task.request, "request_id", None) if task is not None else None)


@task_postrun.connect
def _clear_request_id(**_: Any) -> None:
    set_request_id(None)
