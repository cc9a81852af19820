"""Dispatch, as a fleet sees it, in one run:

- ``bench.http_dispatch``: HTTP workers drain queued tasks (the legacy shape against the old
  design rebuilt behind the same web stack, then the gateway's batch shapes), and the
  enqueue rate (ledger rows with dedup, then publish).
- ``bench.idle_fleet``: what 1,000 waiting long polls cost the API, and how fast an enqueued
  task reaches one of them.
"""

from __future__ import annotations


def run() -> None:
    from bench import http_dispatch, idle_fleet

    http_dispatch.run()
    idle_fleet.run()
