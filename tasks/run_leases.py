"""The node's side of Celery run leases: renewed while a run is active, closed at once when
Celery terminates it.

A scrape run holds a short run lease (``GATEWAY_CELERY_RUN_LEASE_S``). The worker's main
process renews, every ``run_lease_renew_interval_s``, the leases of the ``scrape.parcel``
requests the node has active, in one statement. A run stops being renewed when its node dies
(kill -9), its pool child dies (the request leaves the active set) or Celery terminates it,
so the reaper retries it within about one lease. A run that returned has handed its result
to the ingest queue and stays ``running`` until the ingest writes it: its request notes it
when its message is acknowledged, and the next tick gives it the hand-off lease
(``run_handoff_lease_s``), so an ingest backlog is not taken for lost runs. A run that Celery
terminates in the main process is a failed attempt at once:

- broker connection lost (``worker_cancel_long_running_tasks_on_connection_loss``): the
  consumer calls ``Request.cancel``, which kills the child, then writes the result backend
  (``mark_as_retry``, even for tasks that ignore results) and only then sends ``task_retry``.
  With one Redis as broker and backend that write fails, the signal is never sent and the
  consumer logs "Failed to cancel active request"; so ``ScrapeRequest.cancel`` records the run
  first. The message stays unacked and comes back, finds the row in ``retry_wait`` and is
  dropped; the beat re-publishes the retry;
- ``revoke(terminate=True)``: ``task_revoked`` with ``terminated=True``; the message is acked
  and every node now drops the task id (``worker.state.revoked``), so the task is cancelled,
  as the operator meant (a retry could never run). A failed cancel (above) also ends in
  ``task_revoked(terminated=True)``, for an id nobody revoked: that one is a retry;
- hard time limit: ``Request.on_timeout`` sends ``task_failure`` with ``TimeLimitExceeded``;
  the message is acked (``acks_on_failure_or_timeout``) and the beat re-publishes the retry.

Those signals also fire in pool children, for a task's own failure: only the process that
started the renewal records terminations. Every record is fenced on the task running on this
node, so a second announcement of the same termination changes nothing.

The renewal starts after the pool has forked its children and stops when the worker shuts
down, after the pool has finished its runs (a warm shutdown waits for them, renewed). The pool
forks again to replace a dead child: the fork waits for a renewal in progress, so no child
starts with a lock the renewal thread held.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from celery import bootsteps
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, task_revoked, worker_shutdown
from celery.worker import state as worker_state
from celery.worker.request import Request
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from services.dispatch.envelopes import SCRAPE_TASK_NAME
from services.dispatch.failures import FailureReason
from services.dispatch.running import cancel_revoked_run, fail_terminated_run, renew_run_leases
from settings import get_settings, to_sqlalchemy_url

logger = logging.getLogger(__name__)
# A fork (the pool replacing a dead child) waits for the renewal's database work in progress:
# a child must not start with a lock that the renewal thread held (libpq, SQLAlchemy).
_fork_guard = threading.Lock()


def _renew_fork_guard() -> None:
    global _fork_guard
    _fork_guard = threading.Lock()


os.register_at_fork(
    before=lambda: _fork_guard.acquire(),
    after_in_parent=lambda: _fork_guard.release(),
    after_in_child=_renew_fork_guard,
)


class NodeRunLeases:
    """The renewal thread of one worker node, and the recording of its terminated runs."""

    def __init__(
        self, worker_name: str, *, lease_s: float, interval_s: float, handoff_lease_s: float
    ) -> None:
        self.worker_name = worker_name
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.handoff_lease_s = handoff_lease_s
        self._returned: deque[str] = deque()  # runs acknowledged since the last tick
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
            connect_args={
                "application_name": "taxlien-worker-node",
                "connect_timeout": 5,
                # Records run on the consumer's own thread: bounded, never a long wait.
                "options": "-c statement_timeout=5000 -c lock_timeout=2000",
            },
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

    def note_returned(self, task_id: str) -> None:
        """A run of this node returned and its message was acknowledged (any thread)."""
        self._returned.append(task_id)

    def renew_once(self) -> int:
        """Renew the leases of the node's active scrape runs, and give the runs that returned
        since the last tick the hand-off lease; returns active runs renewed."""
        task_ids = active_scrape_task_ids()
        returned = _drain(self._returned)
        # An id both returned and active (a duplicate delivery dropped while its run goes on
        # here) is still a live run: it keeps the short lease until that run returns.
        active = {str(task_id) for task_id in task_ids}
        handed_off = [i for i in map(_ledger_id, set(returned) - active) if i is not None]
        if not task_ids and not handed_off:
            return 0
        try:
            with _fork_guard, self._session() as session:
                now = datetime.now(UTC)
                renew_run_leases(
                    session,
                    handed_off,
                    worker_name=self.worker_name,
                    run_lease_s=self.handoff_lease_s,
                    now=now,
                )
                return renew_run_leases(
                    session,
                    task_ids,
                    worker_name=self.worker_name,
                    run_lease_s=self.lease_s,
                    now=now,
                )
        except Exception:  # the database is down: the next tick tries again, the same runs too
            self._returned.extend(returned)
            raise

    def record_termination(self, task_id: uuid.UUID, *, reason: str, why: str) -> None:
        """Close a run Celery terminated on this node as a failed attempt; if that fails, its
        lease runs out."""
        message = f"terminated by Celery on {self.worker_name}: {why}"
        try:
            with self._session() as session:
                outcome = fail_terminated_run(
                    session,
                    task_id,
                    worker_name=self.worker_name,
                    reason=reason,
                    message=message,
                    now=datetime.now(UTC),
                )
        except Exception:  # called inside Celery's own error handling: never raise into it
            logger.exception("task %s: %s; not recorded, its run lease will expire", task_id, why)
            return
        if outcome is not None:
            shown = "retry_wait" if outcome.should_retry else "dead"
            logger.warning("task %s %s: recorded as a failed attempt (%s)", task_id, message, shown)

    def record_revoke(self, task_id: uuid.UUID) -> None:
        """An operator's ``revoke(terminate=True)`` of a run on this node: cancelled."""
        try:
            with self._session() as session:
                cancelled = cancel_revoked_run(
                    session, task_id, worker_name=self.worker_name, now=datetime.now(UTC)
                )
        except Exception:  # inside Celery's own handling: never raise into it
            logger.exception("task %s revoked; not recorded, its run lease will expire", task_id)
            return
        if cancelled is not None:
            logger.warning("task %s revoked on %s: cancelled", task_id, self.worker_name)

    def _renew_until_stopped(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.renew_once()
            except Exception:  # any error: if this thread died, every run here would be reaped
                logger.exception(
                    "renewing run leases on %s failed; retrying in %.1fs",
                    self.worker_name,
                    self.interval_s,
                )

    @contextmanager
    def _session(self) -> Iterator[Session]:
        assert self._engine is not None, "start() the renewal first"
        with Session(self._engine) as session, session.begin():
            yield session


def active_scrape_task_ids() -> list[uuid.UUID]:
    """Ledger ids of the ``scrape.parcel`` requests the node is running now.

    Read from another thread than the one that changes the set: the set of weak references
    behind ``active_requests`` is copied in one C call, which holds the GIL throughout.
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


def _drain(returned: deque[str]) -> list[str]:
    """Take what other threads appended so far (``popleft`` is atomic)."""
    taken = []
    while returned:
        try:
            taken.append(returned.popleft())
        except IndexError:
            break
    return taken


def _ledger_id(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class RunLeaseRenewal(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker bootstep: the node's ``NodeRunLeases``, started once the pool has forked its
    children, stopped when the worker shuts down (``worker_shutdown``: after a warm shutdown
    has waited for the runs in progress, which stay renewed meanwhile)."""

    label = "run lease renewal"
    requires = ("celery.worker.components:Pool",)

    def stop(self, worker: Any) -> None:
        """Not yet: the pool, stopped after this step, waits for its runs first."""

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


@worker_shutdown.connect
def _stop_renewing(**_: Any) -> None:
    if _node is not None and _node.pid == os.getpid():
        _node.stop()


def _main_process_node(task: Any) -> NodeRunLeases | None:
    """The node's renewal, in its main process, for a ``scrape.parcel`` request."""
    node = _node
    if node is None or node.pid != os.getpid():
        return None  # a pool child, or not a worker
    if getattr(task, "name", None) != SCRAPE_TASK_NAME:
        return None
    return node


def _record_termination(task: Any, task_id: object, *, reason: str, why: str) -> None:
    node, ledger_id = _main_process_node(task), _ledger_id(task_id)
    if node is not None and ledger_id is not None:
        node.record_termination(ledger_id, reason=reason, why=why)


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

    def acknowledge(self) -> None:
        """A run acknowledged after it returned handed its result to the ingest (or ended
        otherwise): the next renewal gives it the hand-off lease if it is still running.
        (Celery's per-task request class overrides ``on_success``, not this.)"""
        super().acknowledge()
        node = _main_process_node(self.task)
        if node is not None:
            node.note_returned(str(self.id))


@task_revoked.connect
def _record_terminated_run(
    sender: Any = None, request: Any = None, terminated: bool = False, **_: Any
) -> None:
    if not terminated:
        return
    task_id = getattr(request, "id", None)
    if task_id in worker_state.revoked:
        node, ledger_id = _main_process_node(sender), _ledger_id(task_id)
        if node is not None and ledger_id is not None:
            node.record_revoke(ledger_id)
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
