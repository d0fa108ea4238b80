"""Sync workers stop when told, without waiting for the requests they have in flight.

The uploader and the bundle fetcher each run a few loops (bulk lane and alert fast lane; one
long-poll per list). A loop checks its stop event between requests, but a request in flight can
take a long time to end: a bundle long-poll is held open by the hub for ``long_poll_s`` (25 s),
and a request to a hub that stopped answering runs into its timeout. ``run_until_stopped``
cancels the loops as soon as stop is set, so a gateway stops within its shutdown budget. A
cancelled upload is safe: the hub inserts idempotently and the journal's cursor moves only on
the hub's answer, so the rows go again with the final flush or the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def run_until_stopped(
    stop: asyncio.Event, loops: dict[str, Coroutine[Any, Any, None]]
) -> None:
    """Run ``loops`` (name -> coroutine) until they end or ``stop`` is set, then cancel them."""
    async with asyncio.TaskGroup() as group:
        running = {group.create_task(loop, name=name) for name, loop in loops.items()}
        stopped = group.create_task(stop.wait(), name="stop")
        while running and not stop.is_set():
            await asyncio.wait({*running, stopped}, return_when=asyncio.FIRST_COMPLETED)
            running = {task for task in running if not task.done()}
        for task in running:
            task.cancel()
        stopped.cancel()
