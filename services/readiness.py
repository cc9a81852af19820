"""Readiness probes for the servers the gateway depends on."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from kombu import Connection
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError


@dataclass(frozen=True)
class ProbeResult:
    name: str
    is_ok: bool
    error: str | None = None


def probe_database(engine: Engine) -> ProbeResult:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return ProbeResult("database", False, type(exc).__name__)
    return ProbeResult("database", True)


def probe_redis(url: str, *, timeout_s: float = 2.0) -> ProbeResult:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        return ProbeResult("redis", False, type(exc).__name__)
    finally:
        client.close()
    return ProbeResult("redis", True)


def probe_broker(url: str, *, timeout_s: float = 2.0) -> ProbeResult:
    try:
        with Connection(url, connect_timeout=timeout_s) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)
    except (BrokerUnavailable, OSError) as exc:
        return ProbeResult("broker", False, type(exc).__name__)
    return ProbeResult("broker", True)
