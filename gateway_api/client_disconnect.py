"""Notice a client hanging up while its request waits (a long poll), without reading a body.

Starlette does not cancel a route when its client disconnects, so a long poll whose worker
has gone would go on waiting and could lease tasks that nobody receives (until their leases
expire). The server reports the hang-up as an ``http.disconnect`` message on ``receive``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.types import Receive


@contextlib.asynccontextmanager
async def watch_disconnect(receive: Receive) -> AsyncIterator[asyncio.Event]:
    """An event set when the client disconnects, for the duration of the block.

    Only for requests whose body is not read (GET): the watcher consumes ``receive``.
    """
    gone = asyncio.Event()

    async def listen() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # the (empty) request body; the next message comes at the hang-up
        gone.set()

    watcher = asyncio.create_task(listen(), name="client-disconnect-watch")
    try:
        yield gone
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
