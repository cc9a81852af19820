"""The background heartbeat: reports the worker's status and carries out returned commands."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from worker_client.client import GatewayClient
from worker_client.errors import GatewayError
from worker_client.wire import HeartbeatStatus

logger = logging.getLogger(__name__)
KNOWN_COMMANDS = frozenset({"pause", "resume", "shutdown"})


class HeartbeatLoop:
    """Sends ``read_status()`` every ``interval_s`` and hands each returned command (pause,
    resume, shutdown) to ``on_command``, in the order the operator queued them."""

    def __init__(
        self,
        client: GatewayClient,
        *,
        read_status: Callable[[], HeartbeatStatus],
        on_command: Callable[[str], None],
        interval_s: float = 30.0,
    ) -> None:
        self.client = client
        self.read_status = read_status
        self.on_command = on_command
        self.interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        """Beats once before returning (the gateway knows the worker from then on)."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def beat(self) -> None:
        try:
            answer = self.client.heartbeat(self.read_status())
        except GatewayError as exc:  # the next beat tries again; leases have their own keeper
            logger.warning("heartbeat failed: %s", exc)
            return
        for command in answer.commands:
            if command in KNOWN_COMMANDS:
                logger.info("command from the gateway: %s", command)
                self.on_command(command)
            else:
                logger.warning("ignoring unknown command from the gateway: %r", command)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.beat()
