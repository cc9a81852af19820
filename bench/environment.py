"""Servers for a benchmark run: the configured ones, else embedded ones in a temp folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config

from tests.servers import start_test_servers

REPO_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def bench_servers() -> Iterator[None]:
    """Start servers (GATEWAY_TEST_* URLs honoured), point the settings at them, migrate."""
    work_dir = Path(tempfile.mkdtemp(prefix="taxlien-bench-"))
    servers = start_test_servers(work_dir)
    os.environ.update(
        {
            "GATEWAY_POSTGRES_URL": servers.postgres_url,
            "GATEWAY_REDIS_URL": servers.redis_url,
            "GATEWAY_BROKER_URL": servers.broker_url,
            "GATEWAY_RAW_STORAGE_PATH": str(work_dir / "raw"),
            "GATEWAY_LOG_JSON": "false",
        }
    )
    from settings import get_settings

    get_settings.cache_clear()
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = servers.postgres_url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    try:
        yield
    finally:
        from db.session import get_engine

        get_engine().dispose()
        servers.stop()
