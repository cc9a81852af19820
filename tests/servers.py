"""Test servers: the ones named by GATEWAY_TEST_* variables, else embedded ones for this run.

Each run gets its own database (created here, dropped at the end) so runs never share rows.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql

from gateway_localstack.servers import EmbeddedPostgres, EmbeddedRedis, start_redis_on_a_free_port


@dataclass
class TestServers:
    __test__ = False  # not a test class, whatever pytest's name pattern says

    postgres_url: str
    redis_url: str
    broker_url: str
    _embedded_postgres: EmbeddedPostgres | None = None
    _embedded_redis: EmbeddedRedis | None = None
    admin_database: tuple[str, str] = ("", "")  # (admin url, this run's database name)
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        admin_url, name = self.admin_database
        if name:
            drop_database(admin_url, name)
        if self._embedded_redis is not None:
            self._embedded_redis.stop()
        if self._embedded_postgres is not None:
            self._embedded_postgres.stop()


def create_database(admin_url: str, name: str) -> None:
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    connection.close()


def drop_database(admin_url: str, name: str) -> None:
    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        cursor.execute(statement.format(sql.Identifier(name)))
    connection.close()


def replace_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    prefix = base.rsplit("/", 1)[0]
    return f"{prefix}/{name}" + (f"?{query}" if query else "")


def start_test_servers(work_dir: Path) -> TestServers:
    database = f"taxlien_test_{uuid.uuid4().hex[:8]}"
    embedded_postgres = None
    admin_url = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if admin_url is None:
        embedded_postgres = EmbeddedPostgres(work_dir / "pg")
        admin_url = embedded_postgres.start(database="postgres")
    create_database(admin_url, database)
    postgres_url = replace_database(admin_url, database)

    embedded_redis = None
    redis_url = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if redis_url is None:
        embedded_redis = start_redis_on_a_free_port(work_dir / "redis")
        redis_url = embedded_redis.url
    broker_url = os.environ.get("GATEWAY_TEST_BROKER_URL") or redis_url

    return TestServers(
        postgres_url=postgres_url,
        redis_url=redis_url,
        broker_url=broker_url,
        _embedded_postgres=embedded_postgres,
        _embedded_redis=embedded_redis,
        admin_database=(admin_url, database),
    )
