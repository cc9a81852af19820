"""The node's side of Celery run leases: renewed while a run is active, closed at once when
Celery terminates it.

A scrape run holds a short run lease (``GATEWAY_CELERY_RUN_LEASE_S``). The worker's main
process renews, every ``run_lease_renew_interval_s``, the leases of the ``scrape.parcel``
requests the node has active, in one statement. A run stops being renewed when its node dies
(kill -9), its pool child dies (the request leaves the active set) or Celery terminates it,
so the reaper retries it within about one lease. A run that returned has handed its result
to the ingest queue and stays ``running`` until the ingest writes it: at the next tick it
gets the hand-off lease (``run_handoff_lease_s``), so an ingest backlog is not taken for
lost runs. A run that Celery terminates in the main process is a failed attempt at once:

- broker connection lost (``worker_cancel_long_running_tasks_on_connection_loss``): the
  consumer calls ``Request.cancel``, which kills the child, then writes the result backend
  (``mark_as_retry``, even for tasks that ignore results) and only then sends ``task_retry``.
  With one Redis as broker and backend that write fails, the signal is never sent and the
  consumer logs "Failed to cancel active request"; so ``ScrapeRequest.cancel`` records the run
  first. The message stays unacked and comes back, finds the row in ``retry_wait`` and is
  dropped; the beat re-publishes the retry;
- ``revoke(terminate=True)``: ``task_revoked`` with ``terminated=True``; the message is acked
  and every node now drops the task id (``worker.state.revoked``), so the run is dead-lettered,
  not retried. A failed cancel (above) also ends in ``task_revoked(terminated=True)``, for an
  id nobody revoked: that one is a retry;
- hard time limit: ``Request.on_timeout`` sends ``task_failure`` with ``TimeLimitExceeded``;
  the message is acked (``acks_on_failure_or_timeout``) and the beat re-publishes the retry.

Those signals also fire in pool children, for a task's own failure: only the process that
started the renewal records terminations. Every record is fenced on the task running on this
node, so a second announcement of the same termination changes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from celery import bootsteps
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, task_revoked
from celery.worker import state as worker_state
from celery.worker.request import Request
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from services.dispatch.envelopes import SCRAPE_TASK_NAME
from services.dispatch.failures import FailureReason
from services.dispatch.running import fail_terminated_run, renew_run_leases
from settings import get_settings, to_sqlalchemy_url

logger = logging.getLogger(__name__)


class NodeRunLeases:
    """The renewal thread of one worker node, and the recording of its terminated runs."""

    def __init__(
        self, worker_name: str, *, lease_s: float, interval_s: float, handoff_lease_s: float
    ) -> None:
        self.worker_name = worker_name
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.handoff_lease_s = handoff_lease_s
        self._handed_off: set[str] = set()  # returned requests already given the hand-off lease
        self.pid = os.getpid()
        self._engine: Engine | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.pid = os.getpid()
        # NullPool: a connection lives for one renewal or one record, so the pool children
        # this process forks (also later, to replace dead ones) inherit no idle connection.
        self._engine = create_engine(
            to_sqlalchemy_url(get_settings().database_url),
            poolclass=NullPool,
            connect_args={"application_name": "taxlien-worker-node", "connect_timeout": 5},
        )
        self._stopping.clear()
        self._thread = threading.Thread(target=self._renew_until_stopped, daemon=True)
        self._thread.name = "run-lease-renewal"
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._engine is not None:
            self._engine.dispose()

    def renew_once(self) -> int:
        """Renew the leases of the node's active scrape runs, and give the runs that returned
        since the last tick the hand-off lease; returns active runs renewed. A failure is
        logged and left to the next tick: the thread must outlive a database outage."""
        task_ids = active_scrape_task_ids()
        # An id both returned and active (a duplicate delivery dropped while its run goes on
        # here) is still a live run: it keeps the short lease until that run returns.
        returned = set(worker_state.successful_requests) - {str(i) for i in task_ids}
        handed_off = [i for i in map(_ledger_id, returned - self._handed_off) if i is not None]
        if not task_ids and not handed_off:
            return 0
        try:
            with self._session() as session:
                now = datetime.now(UTC)
                renew_run_leases(
                    session,
                    handed_off,
                    worker_name=self.worker_name,
                    run_lease_s=self.handoff_lease_s,
                    now=now,
                )
                renewed = renew_run_leases(
                    session,
                    task_ids,
                    worker_name=self.worker_name,
                    run_lease_s=self.lease_s,
                    now=now,
                )
        except Exception:  # any error, or the thread dies and every run here is reaped
            logger.exception(
                "renewing %d run leases on %s failed; retrying in %.1fs",
                len(task_ids) + len(handed_off),
                self.worker_name,
                self.interval_s,
            )
            return 0
        self._handed_off = returned  # bounded like Celery's own record of them
        return renewed

    def record_termination(
        self, task_id: uuid.UUID, *, reason: str, why: str, is_retryable: bool
    ) -> None:
        """Close a run Celery terminated on this node; if that fails, its lease runs out."""
        message = f"terminated by Celery on {self.worker_name}: {why}"
        try:
            with self._session() as session:
                outcome = fail_terminated_run(
                    session,
                    task_id,
                    worker_name=self.worker_name,
                    reason=reason,
                    message=message,
                    is_retryable=is_retryable,
                    now=datetime.now(UTC),
                )
        except Exception:  # called inside Celery's own error handling: never raise into it
            logger.exception("task %s: %s; not recorded, its run lease will expire", task_id, why)
            return
        if outcome is not None:
            shown = "retry_wait" if outcome.should_retry else "dead"
            logger.warning("task %s %s: recorded as a failed attempt (%s)", task_id, message, shown)

    def _renew_until_stopped(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.renew_once()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        assert self._engine is not None, "start() the renewal first"
        with Session(self._engine) as session, session.begin():
            yield session


def active_scrape_task_ids() -> list[uuid.UUID]:
    """Ledger ids of the ``scrape.parcel`` requests the node is running now.

    Read from another thread than the one that changes the set: the set of weak references
    behind ``active_requests`` is copied in one C call, which holds the GIL throughout (as is
    ``successful_requests``, whose iterator sorts a copy of its entries first).
    """
    refs = list(worker_state.active_requests.data)
    ids = []
    for ref in refs:
        request = ref()
        if request is not None and request.task.name == SCRAPE_TASK_NAME:
            task_id = _ledger_id(request.id)
            if task_id is not None:
                ids.append(task_id)
    return ids


def _ledger_id(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class RunLeaseRenewal(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker bootstep: the node's ``NodeRunLeases`` starts and stops with the worker."""

    label = "run lease renewal"

    def create(self, worker: Any) -> NodeRunLeases:
        global _node
        settings = get_settings()
        _node = NodeRunLeases(
            str(worker.hostname),
            lease_s=float(settings.celery_run_lease_s),
            interval_s=settings.run_lease_renew_interval_s,
            handoff_lease_s=settings.run_handoff_lease_s,
        )
        return _node


_node: NodeRunLeases | None = None


def _record_termination(
    task: Any, task_id: object, *, reason: str, why: str, is_retryable: bool = True
) -> None:
    node = _node
    if node is None or node.pid != os.getpid():
        return  # a pool child, or not a worker
    if getattr(task, "name", None) != SCRAPE_TASK_NAME:
        return
    ledger_id = _ledger_id(task_id)
    if ledger_id is not None:
        node.record_termination(ledger_id, reason=reason, why=why, is_retryable=is_retryable)


class ScrapeRequest(Request):  # type: ignore[misc]
    """``scrape.parcel``'s request in the worker's main process (``task_annotations``)."""

    def cancel(self, pool: Any, signal: Any = None, emit_retry: bool = True) -> None:
        # emit_retry: the connection-loss cancel; a shutdown's cancel of a late-ack task
        # passes False and hands the message back, which claim_run and the lease handle.
        if emit_retry and self.time_start:
            _record_termination(
                self.task,
                self.id,
                reason=FailureReason.WORKER_LOST.value,
                why="the broker connection was lost",
            )
        super().cancel(pool, signal=signal, emit_retry=emit_retry)


@task_revoked.connect
def _record_terminated_run(
    sender: Any = None, request: Any = None, terminated: bool = False, **_: Any
) -> None:
    if not terminated:
        return
    task_id = getattr(request, "id", None)
    if task_id in worker_state.revoked:
        _record_termination(
            sender,
            task_id,
            reason=FailureReason.WORKER_LOST.value,
            why="revoked with terminate",
            is_retryable=False,
        )
    else:
        _record_termination(
            sender, task_id, reason=FailureReason.WORKER_LOST.value, why="the run was terminated"
        )


@task_failure.connect
def _record_timed_out_run(
    sender: Any = None, task_id: Any = None, exception: Any = None, **_: Any
) -> None:
    if isinstance(exception, TimeLimitExceeded):
        _record_termination(
            sender, task_id, reason=FailureReason.TIMEOUT.value, why="hard time limit"
        )
