"""The hub's emergency command for this site, applied from its signed bundle (issue 13, item 2).

The fetcher hands an emergency bundle to :meth:`HubEmergency.install`, which verifies it
(pinned key, kind, a version above the one held, this site: ``Lists.check``), applies it
through the gateway's emergency (``declare`` / ``end`` with source "hub", the hub user as the
actor and the command's note), and only then keeps it (``Lists.install``: the last good bundle
on disk, its version what the fetcher asks the hub to exceed). So a command is applied once: a
restart loads the version held and the hub sends nothing older or equal; a crash between the
apply and the write applies it again on the next fetch, which ``declare``/``end`` take as a
no-op (they are idempotent). A refused bundle (bad signature, older, another site's) applies
nothing and the version held stays.

The emergency itself (state, alarm inputs, exits held open, journal, alerts) is
gateway/emergency.py's ``Emergency`` (contract13.md); this module needs only the
:class:`EmergencyControl` part of it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from suishen.gateway.lists import Lists
from suishen.protocol.emergency import EmergencySource
from suishen.protocol.listbodies import SiteEmergencyCommand

log = structlog.get_logger("suishen.gateway.hub_commands")

__all__ = ["EmergencyControl", "HubEmergency"]


class EmergencyControl(Protocol):
    """What applying a hub command needs of the gateway's Emergency (contract13.md)."""

    async def declare(self, *, source: EmergencySource, actor: str, note: str = "") -> bool: ...

    async def end(self, *, source: EmergencySource, actor: str, note: str = "") -> bool: ...


class HubEmergency:
    """Applies the hub's emergency bundles for this site (see the module docstring)."""

    def __init__(self, lists: Lists, emergency: EmergencyControl) -> None:
        self._lists = lists
        self._emergency = emergency
        self._lock = asyncio.Lock()

    async def install(self, data: bytes) -> int:
        """Verify, apply, keep; return the version. BundleError when refused (nothing
        applied); an OSError from keeping it comes after the apply (as Lists.install)."""
        async with self._lock:
            bundle, command = self._lists.check("emergency", data)
            assert isinstance(command, SiteEmergencyCommand)
            await self.apply(command, version=bundle.version)
            return await asyncio.to_thread(self._lists.install, "emergency", data)

    async def apply(self, command: SiteEmergencyCommand, *, version: int) -> bool:
        """Declare or end the emergency as the hub said; True when the state changed."""
        act = self._emergency.declare if command.active else self._emergency.end
        changed = await act(source=EmergencySource.HUB, actor=command.by, note=command.note)
        log.warning(
            "emergency command from the hub",
            state="on" if command.active else "off",
            by=command.by,
            version=version,
            changed=changed,
        )
        return changed
