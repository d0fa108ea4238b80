"""Signed lists down from the hub: one long-poll per kind (trust, watchlist, roster, calendar,
emergency; the service says which).

Each kind's task asks ``GET {hub}/v1/bundles/{kind}?after={version held}&wait={long_poll_s}``
over the gateway's mutual-TLS session.  The hub answers at once when it has a newer bundle,
else holds the request up to ``wait`` seconds and answers 304::

    200  the bundle (COSE_Sign1 bytes) -> Lists.install (verify signature, kind, version;
         parse; swap; write the last-known-good file atomically) -> poll again at once
    304  nothing newer -> poll again (at most once a second per kind, whatever the hub does)
    else / connection error / timeout -> exponential backoff with full jitter

A bundle Lists refuses (bad signature, older, wrong kind, malformed) is logged with the
problem and the list in effect stays; the next poll waits a backoff delay so a hub that keeps
serving the same bad bundle is not asked in a tight loop.  With long-poll a new watchlist entry
reaches a connected gateway about as soon as the hub signs it; without (wait=0) within a
second or so.  A kind with an ``installers`` entry (the emergency command: verified, applied,
then kept) is installed by that coroutine instead of ``Lists.install``; its errors are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import structlog

from suishen.protocol.backoff import Backoff
from suishen.protocol.bundles import MAX_BUNDLE_BYTES
from suishen.protocol.errors import BundleError
from suishen.sync.ports import BundleSink, SyncSettings
from suishen.sync.workers import run_until_stopped

__all__ = ["BundleFetcher", "FetchStats"]

log = structlog.get_logger("suishen.sync.bundle_fetcher")

MIN_POLL_INTERVAL_S: Final = 1.0  # a hub answering 304 at once is not asked faster than this


@dataclass(slots=True)
class FetchStats:
    """Per list kind, for /status and /metrics (updated in place)."""

    installed: int = 0  # bundles accepted
    refused: int = 0  # bundles Lists refused (signature, version, kind, body)
    failures: int = 0  # requests without a usable answer
    last_checked_at: float | None = None  # wall clock of the last 200/304
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "installed": self.installed,
            "refused": self.refused,
            "failures": self.failures,
            "last_checked_at": self.last_checked_at,
            "last_error": self.last_error,
        }


class BundleFetcher:
    """Keeps the gateway's lists current from the hub.  ``await run()`` until stop()."""

    def __init__(
        self,
        lists: BundleSink,
        session: aiohttp.ClientSession,
        settings: SyncSettings,
        *,
        gateway_id: str,
        kinds: Iterable[str] = ("trust", "watchlist", "roster"),
        installers: Mapping[str, Callable[[bytes], Awaitable[int]]] | None = None,
    ) -> None:
        self.lists = lists
        self.installers = dict(installers or {})
        self.settings = settings
        self.kinds = tuple(kinds)
        self.stats = {kind: FetchStats() for kind in self.kinds}
        self._session = session
        self._base = settings.url.rstrip("/")
        self._stop = asyncio.Event()
        self._log = log.bind(gateway_id=gateway_id)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await run_until_stopped(
            self._stop, {f"bundles-{kind}": self._poll(kind) for kind in self.kinds}
        )

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    async def _poll(self, kind: str) -> None:
        settings, stats = self.settings, self.stats[kind]
        backoff = Backoff(initial_s=settings.backoff_initial_s, cap_s=settings.backoff_max_s)
        unreachable = False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, data = await self._get(kind)
            except (aiohttp.ClientError, TimeoutError, OSError, _TooLargeError) as exc:
                stats.failures += 1
                stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if not unreachable:
                    unreachable = True
                    self._log.warning("bundle poll failed", list=kind, error=stats.last_error)
                await self._pause(backoff.next_delay())
                continue
            if status not in (200, 304):
                stats.failures += 1
                stats.last_error = f"HTTP {status}"
                if not unreachable:
                    unreachable = True
                    self._log.warning("bundle poll failed", list=kind, status=status)
                await self._pause(backoff.next_delay())
                continue
            if unreachable:
                unreachable = False
                self._log.info("bundle poll back", list=kind)
            stats.last_checked_at = time.time()
            if status == 304:
                backoff.reset()
                await self._pause(MIN_POLL_INTERVAL_S - (time.monotonic() - started))
                continue
            if await self._install(kind, data):
                backoff.reset()
            else:
                await self._pause(backoff.next_delay())

    async def _get(self, kind: str) -> tuple[int, bytes]:
        settings = self.settings
        timeout = aiohttp.ClientTimeout(total=settings.long_poll_s + settings.request_timeout_s)
        params = {"after": str(self.lists.version(kind)), "wait": str(settings.long_poll_s)}
        async with self._session.get(
            f"{self._base}/v1/bundles/{kind}", params=params, timeout=timeout
        ) as response:
            if response.status != 200:
                await response.read()  # small; lets the connection be reused
                return response.status, b""
            length = response.content_length
            if length is not None and length > MAX_BUNDLE_BYTES:
                raise _TooLargeError(f"bundle of {length} bytes is over the limit")
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(1 << 20):
                size += len(chunk)
                if size > MAX_BUNDLE_BYTES:
                    raise _TooLargeError("bundle is over the limit")
                chunks.append(chunk)
            return 200, b"".join(chunks)

    async def _install(self, kind: str, data: bytes) -> bool:
        """Install a bundle (in a thread: a large watchlist takes a while to parse; a kind's
        own installer if it has one)."""
        stats = self.stats[kind]
        try:
            installer = self.installers.get(kind)
            if installer is not None:
                version = await installer(data)
            else:
                version = await asyncio.to_thread(self.lists.install, kind, data)
        except BundleError as exc:
            stats.refused += 1
            stats.last_error = f"refused: {exc.problem}"
            self._log.warning(
                "bundle refused; the last-known-good list stays",
                list=kind,
                problem=exc.problem,
                error=str(exc),
                version_held=self.lists.version(kind),
            )
            return False
        except OSError as exc:
            # Lists swapped the new list in but could not write the file: in effect now,
            # written again with the next bundle.
            stats.installed += 1
            stats.last_error = f"not persisted: {exc.strerror}"
            self._log.error("bundle installed but not written to disk", list=kind, error=str(exc))
            return True
        stats.installed += 1
        stats.last_error = None
        self._log.info("list updated", list=kind, version=version, bytes=len(data))
        return True


class _TooLargeError(Exception):
    """The hub sent a bundle over MAX_BUNDLE_BYTES."""
