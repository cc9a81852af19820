"""The Celery application object, as every process sees it: configured from ``celeryconfig``,
loading the task modules of ``tasks/`` in workers, and carrying the request id on every
message published. It lives below ``tasks/`` so that the broker client
(``services.dispatch.broker_client``) publishes and leases without importing a task module;
the worker-side signal handlers (engines, logging) stay in ``tasks.app``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import before_task_publish

from observability.request_context import get_request_id

app = Celery("taxlien")
app.config_from_object("celeryconfig")
# Names, not imports: workers load them; publishers never need to.
app.conf.include = ["tasks.maintenance", "tasks.ingest", "tasks.scrape", "tasks.dispatch_jobs"]


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = get_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id
