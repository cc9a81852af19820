"""Run benchmarks by name (default: all). Each module exposes ``run() -> None``."""

from __future__ import annotations

import importlib
import sys

from bench.environment import bench_servers

BENCHMARKS = {
    "ingest": "ingest",
    "search": "search",
    "dispatch": "dispatch",
    "celery": "celery_path",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}\n")
        return 2
    for name in names:
        module = importlib.import_module(f"bench.{BENCHMARKS[name]}")
        with bench_servers():
            module.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
