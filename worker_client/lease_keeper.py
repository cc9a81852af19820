"""Keeps the leases of running tasks alive: each is extended well before it would run out."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from worker_client.client import GatewayClient
from worker_client.errors import GatewayError, LeaseConflict, NotFound
from worker_client.wire import WorkTask

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldLease:
    task: WorkTask

    @property
    def task_id(self) -> uuid.UUID:
        return self.task.task_id

    @property
    def lease_token(self) -> int:
        return self.task.lease_token


class LeaseKeeper:
    """Extends every held lease each ``extend_every_s`` (by ``extend_s``, or the gateway's
    lease timeout) until it is released. A lease the gateway says is gone (409, 404) is
    dropped and reported to ``on_lost``: its task must not be completed by this worker."""

    def __init__(
        self,
        client: GatewayClient,
        *,
        extend_every_s: float,
        extend_s: int | None = None,
        on_lost: Callable[[WorkTask, GatewayError], None] | None = None,
    ) -> None:
        self.client = client
        self.extend_every_s = extend_every_s
        self.extend_s = extend_s
        self.on_lost = on_lost
        self._held: dict[uuid.UUID, HeldLease] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def hold(self, task: WorkTask) -> None:
        with self._lock:
            self._held[task.task_id] = HeldLease(task)

    def release(self, task_id: uuid.UUID) -> None:
        with self._lock:
            self._held.pop(task_id, None)

    def held(self) -> list[HeldLease]:
        with self._lock:
            return list(self._held.values())

    def is_held(self, task_id: uuid.UUID) -> bool:
        with self._lock:
            return task_id in self._held

    def extend_all(self) -> None:
        for lease in self.held():
            try:
                self.client.extend(lease.task_id, lease.lease_token, extend_s=self.extend_s)
            except (LeaseConflict, NotFound) as exc:
                self._drop_lost(lease, exc)
            except GatewayError as exc:  # transient trouble outlasted the retries
                logger.warning("could not extend the lease of task %s: %s", lease.task_id, exc)

    def _drop_lost(self, lease: HeldLease, exc: GatewayError) -> None:
        if not self.is_held(lease.task_id):
            return  # released meanwhile: completed or failed, not lost
        self.release(lease.task_id)
        logger.warning("lease of task %s is lost: %s", lease.task_id, exc)
        if self.on_lost is not None:
            self.on_lost(lease.task, exc)

    def _run(self) -> None:
        while not self._stopped.wait(self.extend_every_s):
            self.extend_all()
