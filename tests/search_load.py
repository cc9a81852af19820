"""A separate process of anonymous search clients: ``python -m tests.search_load URL N``.

Each of the N clients sends searches back to back, on its own connection, until the process
is stopped. Prints one line once every client has had an answer (the load is on), then a
tally at the end.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys

import httpx

SEARCHES = [
    {"owner": "OWNER", "sort": "-total_due", "limit": "100"},
    {"address": "MAIN", "sort": "-assessed_value", "limit": "100"},
    {"state": "FL", "sort": "-updated_at", "limit": "100"},
]


async def hammer(url: str, clients: int) -> None:
    statuses: collections.Counter[int] = collections.Counter()
    answered: set[int] = set()
    announced = asyncio.Event()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
            while not stop.is_set():
                try:
                    response = await http.get("/v1/search", params=SEARCHES[n % len(SEARCHES)])
                    statuses[response.status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1
                answered.add(n)
                if len(answered) == clients and not announced.is_set():
                    announced.set()
                    print("all clients answered", flush=True)

    tasks = [asyncio.create_task(client(n)) for n in range(clients)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"statuses {dict(statuses)}", flush=True)


if __name__ == "__main__":
    asyncio.run(hammer(sys.argv[1], int(sys.argv[2])))
