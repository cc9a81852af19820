"""Embedded Redis on a free port: a port taken between the check and the bind is retried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway_localstack import servers
from gateway_localstack.servers import (
    EmbeddedRedis,
    PortTaken,
    find_free_port,
    start_redis_on_a_free_port,
)


@pytest.fixture
def other_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = start_redis_on_a_free_port(tmp_path / "other")
    yield server
    server.stop()


def test_a_port_another_redis_took_after_the_check_is_refused_not_shared(
    tmp_path: Path, other_redis: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check said free; the other server bound the port before ours could.
    monkeypatch.setattr(servers, "is_port_free", lambda port: True)
    late = EmbeddedRedis(tmp_path / "late", other_redis.port, is_persistent=False)

    with pytest.raises(PortTaken):
        late.start()

    late.stop()
    assert redis.Redis.from_url(other_redis.url).ping()  # the other server is left alone


def test_a_redis_started_on_a_free_port_tries_another_port_when_its_port_is_taken(
    tmp_path: Path, other_redis: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered = [other_redis.port]  # the first "free" port is taken by the time Redis binds it
    monkeypatch.setattr(servers, "is_port_free", lambda port: True)
    monkeypatch.setattr(
        servers, "find_free_port", lambda: offered.pop() if offered else find_free_port()
    )

    server = start_redis_on_a_free_port(tmp_path / "mine")
    try:
        client = redis.Redis.from_url(server.url)
        assert server.port != other_redis.port
        assert client.config_get("dir")["dir"] == str((tmp_path / "mine").resolve())
    finally:
        server.stop()
