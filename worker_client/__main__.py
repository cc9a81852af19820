"""``python -m worker_client --platforms demo --concurrency 4``: the reference worker."""

from worker_client.command_line import main

if __name__ == "__main__":
    raise SystemExit(main())
