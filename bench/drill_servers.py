"""The fault drill's own servers, which it stops and kills: they are never the machine's.

PostgreSQL is embedded (``pgserver``, unix socket) and stopped with ``pg_ctl -m immediate``
(a crash: recovery runs at the next start). Redis keeps an append-only file and is killed
with SIGKILL, then started again on the same port from that file. RabbitMQ, for the RabbitMQ
variant, is a private node of the machine's ``rabbitmq-server`` (own ports, own data folder);
it is killed with SIGKILL and started again on the same data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from gateway_localstack.servers import EmbeddedPostgres, EmbeddedRedis, find_free_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def rabbitmq_is_installed() -> bool:
    return Path(RABBITMQ_SERVER).is_file() and shutil.which("erl") is not None


@dataclass
class DrillPostgres:
    data_dir: Path
    url: str = ""
    _embedded: EmbeddedPostgres | None = field(default=None, init=False)

    def start(self) -> str:
        self._embedded = EmbeddedPostgres(self.data_dir)
        self.url = self._embedded.start(database="drill")
        return self.url

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every backend ends at once, nothing is flushed."""
        from pgserver._commands import pg_ctl

        server = self._server
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)

    def restart(self) -> None:
        server = self._server
        with server._lock:
            server.ensure_postgres_running()

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    @property
    def _server(self):  # type: ignore[no-untyped-def]  # pgserver's class is untyped
        assert self._embedded is not None and self._embedded._server is not None
        return self._embedded._server


@dataclass
class DrillRedis:
    """A persistent (append-only) Redis on a port of its own, killable and restartable."""

    data_dir: Path
    _server: EmbeddedRedis | None = field(default=None, init=False)

    def start(self) -> str:
        self._server = EmbeddedRedis(self.data_dir, find_free_port(), is_persistent=True)
        return self._server.start()

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def kill(self) -> None:
        assert self._server is not None and self._server._process is not None
        self._server._process.kill()
        self._server._process.wait()
        self._server._process = None

    def restart(self) -> None:
        """Start again on the same port, from the append-only file."""
        assert self._server is not None
        self._server.start(timeout_s=30)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


@dataclass
class DrillRabbitMQ:
    """A private RabbitMQ node: its own node name, AMQP and distribution ports, data folder."""

    data_dir: Path
    port: int = field(default_factory=find_free_port)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, *, timeout_s: float = 90.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "enabled_plugins").write_text("[].\n")
        (self.data_dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (self.data_dir / "rabbitmq-env.conf").write_text("")
        env = {
            **os.environ,
            "HOME": str(self.data_dir),  # its own Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.data_dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.data_dir / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.data_dir / "enabled_plugins"),
            "RABBITMQ_NODENAME": f"drill{self.port}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(find_free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.data_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.data_dir / "log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        with (self.data_dir / "server.out").open("ab") as out:
            self._process = subprocess.Popen(
                [RABBITMQ_SERVER], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self._wait_until_ready(timeout_s)
        return self.url

    def _wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"RabbitMQ exited; see {self.data_dir / 'server.out'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the whole node (the Erlang VM and its helpers)."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.start()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self.kill()


class DrillServers:
    """The drill's servers together: PostgreSQL, Redis, and RabbitMQ for that variant."""

    def __init__(self, work_dir: Path, broker: str) -> None:
        self.work_dir = work_dir
        self.postgres = DrillPostgres(work_dir / "postgres")
        self.redis = DrillRedis(work_dir / "redis")
        self.rabbitmq = DrillRabbitMQ(work_dir / "rabbitmq") if broker == "rabbitmq" else None

    def start(self) -> dict[str, str]:
        """Start them; returns the environment that points the gateway's processes at them."""
        postgres_url = self.postgres.start()
        redis_url = self.redis.start()
        broker_url = self.rabbitmq.start() if self.rabbitmq is not None else redis_url
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        return {
            **inherited,  # the drill's settings are its own, whatever this shell set
            "GATEWAY_POSTGRES_URL": postgres_url,
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_BROKER_URL": broker_url,
            "GATEWAY_RAW_STORAGE_PATH": str(self.work_dir / "raw"),
        }

    def duplicates_dropped(self) -> dict[str, int]:
        """The fleet's count of scrape messages dropped as duplicates, by path."""
        from services.dispatch.outcome_metrics import DUPLICATES_DROPPED_KEY

        client = redis.Redis.from_url(self.redis.url, decode_responses=True)
        try:
            raw = client.hgetall(DUPLICATES_DROPPED_KEY)
        finally:
            client.close()
        return {str(path): int(count) for path, count in raw.items()}

    def stop(self) -> None:
        if self.rabbitmq is not None:
            self.rabbitmq.stop()
        self.redis.stop()
        self.postgres.stop()
