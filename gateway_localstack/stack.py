"""The local stack: embedded servers (unless URLs are configured), migrations, API, worker,
beat and Flower, supervised together. Ctrl-C stops everything; data stays in the data folder."""

from __future__ import annotations

import logging
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from gateway_localstack.demo import reference_worker, report_progress, seed_demo_once
from gateway_localstack.processes import ChildProcess
from gateway_localstack.servers import EmbeddedPostgres, EmbeddedRedis, is_port_free
from services.queue_topology import SERVICE_QUEUES, scrape_worker_queue_names
from settings import GatewaySettings, to_sqlalchemy_url

logger = logging.getLogger("gateway_localstack")
REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_WORKER_TOKEN = "local-worker-token"
LOCAL_ADMIN_TOKEN = "local-admin-token"
PROGRESS_EVERY_S = 15.0


class StackError(Exception):
    """The stack cannot start; the message says why in one line."""


@dataclass
class LocalStack:
    settings: GatewaySettings
    env: dict[str, str]
    is_demo: bool = True
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    children: list[ChildProcess] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start_servers(self) -> None:
        data_dir = self.settings.local_data_dir.resolve()
        if not self.settings.postgres_url:
            self.postgres = EmbeddedPostgres(data_dir / "postgres")
            self.env["GATEWAY_POSTGRES_URL"] = self.postgres.start(database="taxlien")
            logger.info("embedded PostgreSQL in %s (unix socket)", data_dir / "postgres")
        if not self.settings.redis_url:
            self.redis = EmbeddedRedis(data_dir / "redis", self.settings.local_redis_port)
            self.env["GATEWAY_REDIS_URL"] = self.redis.start()
            logger.info("embedded Redis on %s", self.redis.url)
        self.env.setdefault("GATEWAY_WORKER_TOKENS", LOCAL_WORKER_TOKEN)
        self.env.setdefault("GATEWAY_ADMIN_TOKENS", LOCAL_ADMIN_TOKEN)
        self.env["GATEWAY_LOCAL_STACK"] = "true"  # allows the well-known tokens above
        # Children write to a pipe this process relays: they log as its own output would.
        self.env.setdefault("GATEWAY_LOG_JSON", "false" if sys.stdout.isatty() else "true")
        self.write_env_file()

    @property
    def env_file(self) -> Path:
        return self.settings.local_data_dir.resolve() / "stack.env"

    def write_env_file(self) -> None:
        """``source .local/stack.env`` points the CLI (or a shell) at this stack."""
        names = ("GATEWAY_POSTGRES_URL", "GATEWAY_REDIS_URL", "GATEWAY_WORKER_TOKENS",
                 "GATEWAY_ADMIN_TOKENS", "GATEWAY_LOCAL_STACK")  # fmt: skip
        lines = [f"export {name}={shlex.quote(self.env[name])}" for name in names]
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text("\n".join(lines) + "\n")

    def migrate(self) -> None:
        migration = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO_ROOT, env=self.env
        )
        if migration.returncode != 0:
            raise StackError("the database migration failed; see alembic's lines above")

    def scrape_queues(self) -> list[str]:
        engine = create_engine(to_sqlalchemy_url(self.env["GATEWAY_POSTGRES_URL"]))
        try:
            with Session(engine) as session:
                return scrape_worker_queue_names(session)
        finally:
            engine.dispose()

    def start_processes(self) -> None:
        settings = self.settings
        celery = [sys.executable, "-m", "celery", "-A", "tasks.app"]
        beat_schedule = settings.local_data_dir.resolve() / "celerybeat-schedule"

        def worker(name: str, queues: list[str] | tuple[str, ...]) -> ChildProcess:
            return ChildProcess(
                f"{name}-worker",
                [*celery, "worker", "-E", "-Q", ",".join(queues), "-n", f"{name}@%h",
                 "--loglevel", settings.log_level],
            )  # fmt: skip

        scrape_queues = self.scrape_queues()
        self.children = [
            ChildProcess("api", [sys.executable, "-m", "gateway_api"]),
            worker("service", SERVICE_QUEUES),
            *([worker("scrape", scrape_queues)] if scrape_queues else []),
            ChildProcess("beat", [*celery, "beat", "-s", str(beat_schedule), "--loglevel", "INFO"]),
            # Flower reads FLOWER_BASIC_AUTH from its environment: on the command line the
            # password would show in ps.
            ChildProcess(
                "flower",
                [*celery, "flower", f"--address={settings.host}", f"--port={settings.flower_port}"],
            ),
        ]  # fmt: skip
        extra_env = {
            "flower": {"FLOWER_BASIC_AUTH": f"{settings.flower_user}:{settings.flower_password}"}
        }
        if self.is_demo:
            http_worker, extra_env["http-worker"] = reference_worker(
                self.api_url, self.env["GATEWAY_WORKER_TOKENS"].split(",")[0].strip()
            )
            self.children.append(http_worker)
        for child in self.children:
            child.start(env={**self.env, **extra_env.get(child.name, {})}, cwd=REPO_ROOT)

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def wait_until_api_answers(self, timeout_s: float = 60.0) -> None:
        url = f"http://{self.settings.host}:{self.settings.port}/health"
        deadline = time.monotonic() + timeout_s
        while not self.stopping.is_set():
            self.raise_if_a_child_died()
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"the API did not answer {url} within {timeout_s:.0f}s")
            self.stopping.wait(0.25)

    def raise_if_a_child_died(self) -> None:
        for child in self.children:
            code = child.exit_code()
            if code is not None and not self.stopping.is_set():
                raise StackError(f"{child.name} exited with code {code}; see its lines above")

    def stop(self) -> None:
        self.stopping.set()
        # The HTTP worker first, while the API still answers its last results and hand-backs.
        for child in self.children:
            if child.name == "http-worker":
                child.terminate()
                child.wait_or_kill(timeout_s=20)
        for child in reversed(self.children):
            child.terminate()
        for child in reversed(self.children):
            child.wait_or_kill(timeout_s=20)
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def check_ports_free(settings: GatewaySettings) -> None:
    wanted = {"GATEWAY_PORT": settings.port, "GATEWAY_FLOWER_PORT": settings.flower_port}
    if not settings.redis_url:
        wanted["GATEWAY_LOCAL_REDIS_PORT"] = settings.local_redis_port
    for variable, port in wanted.items():
        if not is_port_free(port):
            raise StackError(f"port {port} ({variable}) is in use; set {variable} to another port")


def print_banner(stack: LocalStack) -> None:
    s = stack.settings
    lines = [
        "Taxlien Gateway is up. Ctrl-C stops everything; data stays in "
        f"{s.local_data_dir.resolve()}.",
        f"  API       http://{s.host}:{s.port}  (docs /docs, health /health, metrics /metrics)",
        f"  Flower    http://{s.host}:{s.flower_port}  (user {s.flower_user})",
        f"  Postgres  {stack.env['GATEWAY_POSTGRES_URL']}",
        f"  Redis     {stack.env['GATEWAY_REDIS_URL']}",
        f"  Worker tokens: {stack.env['GATEWAY_WORKER_TOKENS']}   "
        f"Admin tokens: {stack.env['GATEWAY_ADMIN_TOKENS']}",
        f"  CLI: source {stack.env_file} && .venv/bin/gatewayctl --help",
    ]
    if stack.is_demo:
        lines += [
            "  Demo: Dixie County parcels on the demo platform, worked by the Celery scrape",
            "  worker and the reference HTTP worker side by side. Watch them arrive:",
            f"    search   http://{s.host}:{s.port}/v1/search?state=FL&county=dixie&limit=5",
            f"    workers  Flower (Celery) and http://{s.host}:{s.port}/admin/workers (HTTP)",
            "  make run RUN_FLAGS=--no-demo starts without it.",
        ]
    logger.info("\n".join(lines))


def run_stack(settings: GatewaySettings, env: dict[str, str], *, is_demo: bool = True) -> int:
    check_ports_free(settings)
    stack = LocalStack(settings=settings, env=env, is_demo=is_demo)

    def request_stop(signum: int, _: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stack.stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start_servers()
        stack.migrate()
        stack.start_processes()
        stack.wait_until_api_answers()
        if not stack.stopping.is_set():
            if is_demo:
                seed_demo_once(
                    settings.local_demo_ids, settings.local_data_dir.resolve(), stack.env, REPO_ROOT
                )
            print_banner(stack)
        admin_token = stack.env["GATEWAY_ADMIN_TOKENS"].split(",")[0].strip()
        is_demo_active, next_report = is_demo, time.monotonic()
        while not stack.stopping.wait(0.5):
            stack.raise_if_a_child_died()
            if is_demo_active and time.monotonic() >= next_report:
                is_demo_active = report_progress(stack.api_url, admin_token)
                next_report = time.monotonic() + PROGRESS_EVERY_S
    except StackError as exc:
        logger.error("%s", exc)
        return 1
    finally:
        stack.stop()
        logger.info("stopped")
    return 0
