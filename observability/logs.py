"""Logs that carry the request id of the work they describe: JSON lines (one object a line)
for collectors, or human-readable lines when a person is watching a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from observability.request_context import get_request_id

HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(request_tag)s  %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request_id = get_request_id()
        record.request_id = request_id
        record.request_tag = f" [{request_id}]" if request_id else ""
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
    )


def human_formatter() -> logging.Formatter:
    return logging.Formatter(HUMAN_FORMAT, datefmt="%H:%M:%S")


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(
    *, level: str = "INFO", as_json: bool | None = None, stream: TextIO | None = None
) -> None:
    """``as_json`` None: JSON unless the output is a terminal (``make run`` in a shell)."""
    output = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(output)
    handler.addFilter(RequestIdFilter())
    is_json = not is_terminal(output) if as_json is None else as_json
    handler.setFormatter(json_formatter() if is_json else human_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
