"""Real outages of the run's broker: a forwarding server in front of it that can be stopped.

Stopping the proxy cuts every connection through it and refuses new ones, as a stopped broker
does, whatever the broker is (Redis or RabbitMQ, which cannot be thrown away here); starting it
again on the same port brings the broker back. The ``stoppable_broker`` fixture (conftest) points
the Celery app (and the settings, for readiness) at the proxy for one test.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit

from gateway_localstack.servers import find_free_port

_DEFAULT_PORTS = {"amqp": 5672, "pyamqp": 5672, "redis": 6379}


def broker_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or _DEFAULT_PORTS[parts.scheme]


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = find_free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """The outage: no new connection is accepted, and every open one is cut."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()
        with self._lock:
            doomed, self._sockets = self._sockets, []
        for sock in doomed:
            _close(sock)

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass  # cut by stop() or by either end
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already shut by the other end
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def use_broker_pools_of_current_url(*, close_current: bool = False) -> None:
    """The Celery app takes its pools again from kombu's registry, by its current broker_url.

    kombu keeps one pool per URL for the process: the run's own is left open for later tests;
    ``close_current`` closes the one in use (the proxy's, never used again).
    """
    from tasks.app import app

    if close_current:
        app.pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
