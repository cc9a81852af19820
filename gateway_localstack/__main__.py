"""``python -m gateway_localstack`` (``make run``): the whole gateway on this machine, no Docker."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gateway_localstack.stack import StackError, run_stack
from settings import ConfigurationError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway_localstack", description=__doc__)
    parser.add_argument(
        "--no-demo",
        action="store_true",
        help="no demo tasks and no reference HTTP worker; the stack alone",
    )
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[stack] %(message)s", stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The local stack's well-known tokens are allowed here, and only here.
    os.environ.setdefault("GATEWAY_LOCAL_STACK", "true")
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
    try:
        # The children are configured through the environment they inherit.
        return run_stack(settings, dict(os.environ), is_demo=not options.no_demo)
    except StackError as exc:
        sys.stderr.write(f"cannot start: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
