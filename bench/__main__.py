"""Run benchmarks by name (default: all). Each module exposes ``run() -> None``.

``python -m bench faults [options]`` runs the fault drill (``bench.faults``) instead: it starts
and breaks servers of its own, takes options, and exits non-zero when anything was lost.
"""

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
    if argv[:1] == ["faults"]:
        from bench.faults import main as run_fault_drill

        return run_fault_drill(argv[1:])
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
