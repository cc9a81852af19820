"""The Celery application of workers and beat: the shared app object
(``services.dispatch.celery_app``) with the worker-side signal handlers and the node's run
lease renewal (``tasks.run_leases``)."""

from __future__ import annotations

from typing import Any

from celery.signals import (
    after_setup_logger,
    beat_init,
    task_postrun,
    task_prerun,
    worker_process_init,
)

from db.session import configure_engine
from observability.logs import configure_logging
from observability.request_context import set_request_id
from services.dispatch.celery_app import app
from settings import get_settings
from tasks.run_leases import RunLeaseRenewal

__all__ = ["app"]

# In each worker's main process: renews its runs' leases, records runs Celery terminates.
app.steps["worker"].add(RunLeaseRenewal)


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


@task_prerun.connect
def _restore_request_id(task: Any = None, **_: Any) -> None:
    set_request_id(getattr(task.request, "request_id", None) if task is not None else None)


@task_postrun.connect
def _clear_request_id(**_: Any) -> None:
    set_request_id(None)
