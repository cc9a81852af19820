"""Any broker through kombu: one ``basic_get`` per message, one ack each, on a channel of its
own that is closed at the end (the broker puts back what it did not see acknowledged)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kombu import Connection, Message, Queue
from kombu.exceptions import KombuError

from services.dispatch.lease_loop import TakenMessage, ledger_id
from services.errors import ServiceUnavailable

QueueFactory = Callable[[str], Queue]
_declared: set[str] = set()


class KombuSource:
    def __init__(self, connection: Connection, queue_for: QueueFactory) -> None:
        self.errors: tuple[type[BaseException], ...] = (
            KombuError,
            *connection.connection_errors,
            *connection.channel_errors,
        )
        try:
            connection.ensure_connection(max_retries=1)
            self._channel = connection.channel()
        except self.errors as exc:
            raise ServiceUnavailable("the broker is unreachable") from exc
        self._queue_for = queue_for

    def take(self, levels: Sequence[Sequence[str]], wanted: int) -> list[TakenMessage]:
        taken: list[TakenMessage] = []
        try:
            for names in levels:
                queues = [self._bound(name) for name in names]
                taken.extend(self._take_round_robin(queues, wanted - len(taken)))
                if len(taken) >= wanted:
                    break
        except self.errors:
            _declared.clear()  # a queue deleted on the broker is declared again next time
            raise
        return taken

    def _bound(self, name: str) -> Queue:
        queue = self._queue_for(name).bind(self._channel)
        if name not in _declared:
            # A worker may poll before anything was published; AMQP refuses unknown queues.
            queue.declare()
            _declared.add(name)
        return queue

    def _take_round_robin(self, queues: Sequence[Queue], wanted: int) -> list[TakenMessage]:
        """One message per queue in turn until ``wanted`` are taken or every queue is empty."""
        taken: list[TakenMessage] = []
        live = list(queues)
        while live and len(taken) < wanted:
            for queue in list(live):
                message = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    live.remove(queue)
                    continue
                task_id = ledger_id((message.headers or {}).get("id"))
                taken.append(TakenMessage(task_id, message, self))
                if len(taken) >= wanted:
                    break
        return taken

    def ack(self, messages: Sequence[TakenMessage]) -> None:
        for taken in messages:
            message = taken.handle
            assert isinstance(message, Message)
            message.ack()

    def close(self) -> None:
        self._channel.close()
