"""Lane latency (issue 12, item 4): a running gateway keeps its start-up heap out of the cyclic
collector's full passes, so a generation-2 collection under load does not stall the lanes for
the tens of milliseconds it takes to traverse config, lists, drivers and imported modules."""

from __future__ import annotations

import gc
import time
from pathlib import Path

from tests.integration.gateway_fixtures import running_gateway


async def test_the_start_up_heap_is_frozen_while_the_gateway_runs(tmp_path: Path) -> None:
    """While the gateway runs, the objects of its start-up sit in the permanent generation
    and a full collection is short; once it stops they are handed back to the collector."""
    assert gc.get_freeze_count() == 0
    async with running_gateway(tmp_path):
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the start-up heap: modules, config, drivers, aiohttp
        full_pass_s = _full_pass_s()
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0
    # The same full pass over everything, for scale: what a lane would wait without the freeze.
    assert full_pass_s < _full_pass_s()


def _full_pass_s() -> float:
    """The shortest of three full collections, in seconds (a scheduler hiccup is not one)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - start)
    return min(times)
