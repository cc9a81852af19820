"""Logs are JSON lines for collectors and human-readable lines on a terminal."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from observability.logs import configure_logging
from observability.request_context import set_request_id


@pytest.fixture(autouse=True)
def _keep_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_output_that_is_not_a_terminal_gets_json_lines_with_the_request_id() -> None:
    output = io.StringIO()
    configure_logging(stream=output)
    set_request_id("req-42")
    try:
        logging.getLogger("gateway.test").warning("task %s dead", "abc")
    finally:
        set_request_id(None)

    line = json.loads(output.getvalue())
    assert line["message"] == "task abc dead" and line["level"] == "WARNING"
    assert line["request_id"] == "req-42" and line["logger"] == "gateway.test"


def test_a_terminal_gets_human_readable_lines() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        configure_logging(stream=terminal)
        logging.getLogger("gateway.test").warning("queue %s is aging", "demo")
        terminal.flush()
        text = os.read(leader, 4096).decode()
    os.close(leader)

    assert "WARNING gateway.test  queue demo is aging" in text
    assert not text.lstrip().startswith("{")


def test_the_setting_overrides_the_terminal_check() -> None:
    output = io.StringIO()
    configure_logging(stream=output, as_json=False)
    logging.getLogger("gateway.test").info("plain")

    assert "INFO    gateway.test  plain" in output.getvalue()
