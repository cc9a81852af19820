"""Fixtures on real PostgreSQL, Redis and Celery workers.

Servers come from GATEWAY_TEST_POSTGRES_URL / _REDIS_URL / _BROKER_URL when set, otherwise
embedded ones are started once per run. They start in ``pytest_sessionstart``, before any
module reads the settings, and the schema is built with ``alembic upgrade head``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.celery_workers import REPO_ROOT, WorkerProcess, start_worker
from tests.outages import TcpProxy, broker_address, use_broker_pools_of_current_url
from tests.servers import TestServers, start_test_servers

WORKER_TOKEN = "test-worker-token"
ADMIN_TOKEN = "test-admin-token"
_servers: TestServers | None = None
_work_dir = Path(tempfile.mkdtemp(prefix="taxlien-tests-"))
_KEPT_TABLES = frozenset({"alembic_version", "platforms"})


def pytest_sessionstart(session: pytest.Session) -> None:
    global _servers
    _servers = start_test_servers(_work_dir)
    os.environ.update(
        {
            "GATEWAY_POSTGRES_URL": _servers.postgres_url,
            "GATEWAY_REDIS_URL": _servers.redis_url,
            "GATEWAY_BROKER_URL": _servers.broker_url,
            "GATEWAY_WORKER_TOKENS": f"{WORKER_TOKEN},second-worker-token",
            "GATEWAY_ADMIN_TOKENS": ADMIN_TOKEN,
            "GATEWAY_RAW_STORAGE_PATH": str(_work_dir / "raw"),
            "GATEWAY_LOCAL_DATA_DIR": str(_work_dir),
            "GATEWAY_LOG_JSON": "false",
            # Tests read figures right after changing them; the caches have their own tests.
            "GATEWAY_METRICS_CACHE_S": "0",
            "GATEWAY_READINESS_CACHE_S": "0",
        }
    )
    from settings import get_settings

    get_settings.cache_clear()
    run_migrations(_servers.postgres_url)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from db.session import get_engine

    get_engine().dispose()
    if _servers is not None:
        _servers.stop()


def run_migrations(database_url: str) -> None:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


@pytest.fixture(scope="session")
def test_servers() -> TestServers:
    assert _servers is not None
    return _servers


@pytest.fixture(scope="session")
def seed_platforms() -> list[str]:
    from db.session import get_engine

    with get_engine().connect() as connection:
        return list(connection.execute(text("SELECT name FROM platforms")).scalars())


@pytest.fixture(autouse=True)
def _isolate_state(seed_platforms: list[str]) -> Iterator[None]:
    """Each test starts with empty tables (seed platforms kept) and an empty Redis."""
    yield
    from db.session import get_engine
    from settings import get_settings

    settings = get_settings()
    with get_engine().begin() as connection:
        tables = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        to_truncate = [t for t in tables if t not in _KEPT_TABLES]
        if to_truncate:
            quoted = ", ".join(f'"{t}"' for t in to_truncate)
            connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        connection.execute(
            text("DELETE FROM platforms WHERE NOT (name = ANY(:seed))"), {"seed": seed_platforms}
        )
    flush_redis_keeping_bindings(settings.cache_url)
    from gateway_api.auth import worker_identity_cache

    worker_identity_cache().clear()  # claims and credentials were just truncated
    from services.dispatch.rate_limits import forget_cached_limits

    forget_cached_limits()  # so were the politeness limits
    if settings.celery_broker_url != settings.cache_url and settings.is_redis_broker:
        flush_redis_keeping_bindings(settings.celery_broker_url)


def flush_redis_keeping_bindings(url: str) -> None:
    # kombu's binding keys route published messages to queues; a running worker needs them.
    client = redis.Redis.from_url(url)
    try:
        doomed = [k for k in client.scan_iter(count=1000) if not k.startswith(b"_kombu.binding.")]
        if doomed:
            client.delete(*doomed)
    finally:
        client.close()


@pytest.fixture
def db_session() -> Iterator[Session]:
    from db.session import new_session

    session = new_session()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    from settings import get_settings

    client = redis.Redis.from_url(get_settings().cache_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def api_app():  # type: ignore[no-untyped-def]
    from gateway_api.app import create_app

    return create_app()


@pytest.fixture
def api_client(api_app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(api_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def running_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real API process (``python -m gateway_api``) on the test servers. Per module: a
    second process listens for work wake-ups and holds connections, which tests of those
    count, so it must not outlive the tests that use it."""
    from tests.api_process import serve_api_process

    yield from serve_api_process(tmp_path_factory.mktemp("api"))


@pytest.fixture
def worker_headers() -> dict[str, str]:
    return {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "worker-test-1"}


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"X-Admin-Token": ADMIN_TOKEN}


@pytest.fixture
def celery_worker_factory(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes: ``celery_worker_factory(["maintenance"], concurrency=1)``."""
    started: list[WorkerProcess] = []

    def factory(queues: list[str], **options: object) -> WorkerProcess:
        worker = start_worker(queues, log_dir=tmp_path, **options)  # type: ignore[arg-type]
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.stop()


@pytest.fixture
def stoppable_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    """The run's broker behind a proxy that the test can stop and start again."""
    from settings import get_settings
    from tasks.app import app

    broker_url = get_settings().celery_broker_url
    proxy = TcpProxy(broker_address(broker_url))
    proxy.start()
    monkeypatch.setenv("GATEWAY_BROKER_URL", proxy.url_for(broker_url))
    get_settings.cache_clear()
    monkeypatch.setattr(app.conf, "broker_url", proxy.url_for(broker_url))
    use_broker_pools_of_current_url()
    try:
        yield proxy
    finally:
        proxy.stop()
        use_broker_pools_of_current_url(close_current=True)
        monkeypatch.undo()
        get_settings.cache_clear()
        use_broker_pools_of_current_url()
