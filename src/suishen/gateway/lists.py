"""The gateway's current lists: trust list, watchlist, worker roster, holiday calendar and the
hub's emergency command for the site (DESIGN §5, §6; issue 13).

Each list arrives as a signed bundle (protocol/bundles.py: COSE_Sign1 by the hub's pinned
Ed25519 key, kind + monotonic version + issued_at + body). :class:`Lists` holds the
last-known-good of each kind in memory, loads them on start from ``<dir>/<kind>.bundle`` and
swaps one atomically when :meth:`Lists.install` accepts a newer one (the sync layer calls it).
A bundle that is older (or the same version), badly signed, of another kind or malformed is
refused with a :class:`~suishen.protocol.errors.BundleError` and the list in effect is kept.
:meth:`Lists.status` reports each list's version, entries and age (``now - issued_at``), so the
gateway can say how stale its lists are while the hub is unreachable.

Bundle bodies: protocol/listbodies.py (shared with the hub, which builds them;
:func:`watchlist_body` and :func:`roster_body` are re-exported here).

The watchlist is columnar so that a 1,000,000-entry list neither decodes into a million
objects nor needs one dict entry per person: :class:`Watchlist` keeps the 32-byte keys
concatenated in one ``bytes``, per-entry values in flat arrays, and an open-addressing hash
table (``array('I')``, a power of two at most half full, slot = first 8 key bytes, linear
probing) of entry indexes: look-up is O(1) expected. Measured with tracemalloc
(tests/unit/test_lists.py): about 47 bytes per entry (32 key + 1 flags + 4 expiry +
2 reason + ~8.4 table), i.e. ~47 MB for 1,000,000 entries, against ~250 B for a dict of
bytes keys to tuples. While a new bundle is installed the old list and the decoded new
bundle coexist briefly (about twice that, plus the bundle bytes).

The roster is small (a site's workers) and is a plain dict; it also carries the site's time
profiles and roster groups from the hub (:attr:`Roster.hours`; gateway/hours.py merges them with
the config). The calendar bundle's body is a holiday calendar (protocol/time_profiles); the
emergency bundle's an :class:`~suishen.protocol.listbodies.SiteEmergencyCommand` for this site (one
for another site is refused, "wrong_site"); gateway/hub_commands.py applies it before
:meth:`Lists.install` keeps it, and its version is what the fetcher asks the hub to exceed, so a
command is applied once, not again after a restart. Neither ages: their ``age_s`` is None.
:meth:`Lists.subscribe` calls back (from the installing thread) after every swap.
"""

from __future__ import annotations

import struct
import threading
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.gateway.records import AlertRoute, WatchLevel
from suishen.protocol.bundles import Bundle, open_bundle
from suishen.protocol.errors import BundleError, TrustListError
from suishen.protocol.listbodies import (
    BODY_FORMAT,
    KEY_BYTES,
    Invitation,
    SiteEmergencyCommand,
    SiteHoursDocument,
    calendar_of,
    emergency_command,
    le_bytes,
    roster_body,
    roster_hours,
    roster_invitations,
    roster_workers,
    watchlist_body,
    watchlist_columns,
)
from suishen.protocol.listbodies import DENY_FLAG as _DENY
from suishen.protocol.listbodies import POLICE_FLAG as _POLICE
from suishen.protocol.listbodies import raw_key as _raw_key
from suishen.protocol.time_profiles import HolidayCalendar
from suishen.protocol.trust import TrustList
from suishen.sync.files import write_atomic

__all__ = [
    "KINDS",
    "ListStatus",
    "Lists",
    "Roster",
    "RosterEntry",
    "WatchEntry",
    "Watchlist",
    "roster_body",
    "watchlist_body",
]

KINDS: Final = ("trust", "watchlist", "roster", "calendar", "emergency")
AGELESS: Final = frozenset({"calendar", "emergency"})  # not stale however old
_NO_HOURS: Final = SiteHoursDocument(profiles={}, raw={}, groups={})
NOT_PUBLISHED = "no bundle file yet"  # never received: the hub has not published it
_EMPTY: Final = 0  # table slot value: entry index + 1, 0 = empty
_PREFIX: Final = struct.Struct("<Q")


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchEntry:
    """One watchlist entry: what a hit does and who handles it."""

    level: WatchLevel
    route: AlertRoute
    reason: str  # a short category from the hub (e.g. "wanted"); no personal data
    expires_at: int | None = None  # POSIX seconds; None = no expiry

    def active_at(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterEntry:
    """A worker registered at a site, and for when."""

    site_id: str
    valid_from: int | None = None  # POSIX seconds, inclusive; None = open
    valid_to: int | None = None  # POSIX seconds, inclusive; None = open
    name_mask: str = ""  # masked display name ("张*明"), never the clear name
    card: str | None = None  # IC / Wiegand card number, when the worker uses a card
    group: str | None = None  # roster group (its time profile: [hours] groups)

    def valid_at(self, now: float) -> bool:
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_to is None or now <= self.valid_to


class Watchlist:
    """person_key -> WatchEntry in ~47 bytes per entry, O(1) look-up (see module docstring)."""

    __slots__ = ("_expires", "_flags", "_keys", "_mask", "_reason_index", "_reasons", "_table")

    def __init__(
        self,
        *,
        keys: bytes = b"",
        flags: bytes = b"",
        expires: array[int] | None = None,
        reason_index: array[int] | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        count = len(flags)
        expires = expires if expires is not None else array("I", bytes(4 * count))
        reason_index = reason_index if reason_index is not None else array("H", bytes(2 * count))
        if len(keys) != KEY_BYTES * count or len(expires) != count or len(reason_index) != count:
            raise ValueError("watchlist columns differ in length")
        if count and max(reason_index) >= len(reasons):
            raise ValueError("watchlist reason_index points past reasons")
        self._keys = keys
        self._flags = flags
        self._expires = expires
        self._reason_index = reason_index
        self._reasons = reasons
        size = 8
        while size < 2 * count:
            size *= 2
        self._mask = size - 1
        self._table = self._build_table(size)

    def _build_table(self, size: int) -> array[int]:
        table = array("I", bytes(4 * size))
        mask, keys = self._mask, self._keys
        for index, (prefix,) in enumerate(struct.iter_unpack("<Q24x", keys)):
            slot = prefix & mask
            while (found := table[slot]) != _EMPTY:
                start, mine = (found - 1) * KEY_BYTES, index * KEY_BYTES
                if keys[start : start + KEY_BYTES] == keys[mine : mine + KEY_BYTES]:
                    break  # a duplicate key: the later entry wins
                slot = (slot + 1) & mask
            table[slot] = index + 1
        return table

    # ----- building

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str | bytes, WatchEntry]]) -> Watchlist:
        """Build from (person_key, entry) pairs (tests, the hub); keys are hex or 32 bytes."""
        return cls.from_body(watchlist_body(entries))

    @classmethod
    def from_body(cls, body: Any) -> Watchlist:
        """Build from a bundle body; raise BundleError("malformed") naming the problem."""
        columns = watchlist_columns(body)
        try:
            return cls(
                keys=columns.keys,
                flags=columns.flags,
                expires=columns.expires,
                reason_index=columns.reason_index,
                reasons=columns.reasons,
            )
        except ValueError as exc:
            raise BundleError("malformed", str(exc)) from exc

    def to_body(self) -> dict[str, Any]:
        return {
            "format": BODY_FORMAT,
            "keys": self._keys,
            "flags": self._flags,
            "expires": le_bytes(self._expires),
            "reason_index": le_bytes(self._reason_index),
            "reasons": list(self._reasons),
        }

    # ----- look-up

    def _index(self, key: bytes) -> int:
        mask, table, keys = self._mask, self._table, self._keys
        slot: int = _PREFIX.unpack_from(key)[0] & mask
        while (found := table[slot]) != _EMPTY:
            start = (found - 1) * KEY_BYTES
            if keys[start : start + KEY_BYTES] == key:
                return int(found - 1)
            slot = (slot + 1) & mask
        return -1

    def entry(self, person_key: str | bytes) -> WatchEntry | None:
        """The entry for a person, expired or not; None when not listed."""
        key = _raw_key(person_key)
        if key is None:
            return None
        index = self._index(key)
        if index < 0:
            return None
        flags, expires = self._flags[index], self._expires[index]
        return WatchEntry(
            level=WatchLevel.DENY if flags & _DENY else WatchLevel.NOTIFY,
            route=AlertRoute.POLICE if flags & _POLICE else AlertRoute.STAFF,
            reason=self._reasons[self._reason_index[index]],
            expires_at=expires or None,
        )

    def get(self, person_key: str | bytes, now: float) -> WatchEntry | None:
        """The entry in force for a person at `now`, or None."""
        entry = self.entry(person_key)
        return entry if entry is not None and entry.active_at(now) else None

    def __contains__(self, person_key: object) -> bool:
        if not isinstance(person_key, str | bytes):
            return False
        key = _raw_key(person_key)
        return key is not None and self._index(key) >= 0

    def __len__(self) -> int:
        return len(self._flags)

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns and the table (what a 1M-entry list costs)."""
        return (
            len(self._keys)
            + len(self._flags)
            + self._expires.itemsize * len(self._expires)
            + self._reason_index.itemsize * len(self._reason_index)
            + self._table.itemsize * len(self._table)
        )


class Roster:
    """Registered workers: person_key -> entries (one per site), and card -> person_key."""

    __slots__ = ("_by_card", "_by_key", "_invited", "hours")

    def __init__(
        self,
        entries: Iterable[tuple[str, RosterEntry]] = (),
        invitations: Iterable[tuple[str, Invitation]] = (),
        hours: SiteHoursDocument = _NO_HOURS,
    ) -> None:
        self.hours = hours  # the site's time profiles and roster groups from the hub
        by_key: dict[str, tuple[RosterEntry, ...]] = {}
        by_card: dict[tuple[str, str], str] = {}
        for person_key, entry in entries:
            if _raw_key(person_key) is None:
                raise ValueError("a roster person_key is 64 hex characters")
            by_key[person_key] = (*by_key.get(person_key, ()), entry)
            if entry.card:
                by_card[entry.site_id, entry.card] = person_key
        self._by_key = by_key
        self._by_card = by_card
        invited: dict[str, tuple[Invitation, ...]] = {}
        for person_key, invitation in invitations:
            invited[person_key] = (*invited.get(person_key, ()), invitation)
        self._invited = invited

    def invited(self, person_key: str, site_id: str, lane_id: str, zone: str, now: float) -> bool:
        """Whether an invitation admits the person at this lane (or zone) now."""
        return any(i.admits(site_id, lane_id, zone, now) for i in self._invited.get(person_key, ()))

    def get(self, person_key: str, site_id: str, now: float) -> RosterEntry | None:
        """The person's registration at `site_id` valid at `now`, or None."""
        for entry in self._by_key.get(person_key, ()):
            if entry.site_id == site_id and entry.valid_at(now):
                return entry
        return None

    def person_for_card(self, site_id: str, card: str) -> str | None:
        """The person_key of the worker holding `card` at `site_id` (any validity)."""
        return self._by_card.get((site_id, card))

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_key.values())

    @classmethod
    def from_body(cls, body: Any) -> Roster:
        """Build from a bundle body; raise BundleError("malformed") naming the problem."""
        entries = [
            (
                person_key,
                RosterEntry(
                    site_id=w.site_id,
                    valid_from=w.valid_from,
                    valid_to=w.valid_to,
                    name_mask=w.name_mask,
                    card=w.card,
                    group=w.group,
                ),
            )
            for person_key, w in roster_workers(body)
        ]
        try:
            return cls(entries, roster_invitations(body), roster_hours(body))
        except ValueError as exc:
            raise BundleError("malformed", str(exc)) from exc


# --------------------------------------------------------------------------- the lists


@dataclass(frozen=True, slots=True, kw_only=True)
class ListStatus:
    """What /status says about one list."""

    kind: str
    version: int  # 0 = none loaded
    issued_at: int | None  # POSIX seconds, from the bundle
    age_s: float | None  # now - issued_at
    entries: int
    problem: str | None = None  # why the file on disk could not be loaded, if it could not


@dataclass(frozen=True, slots=True)
class _Held:
    value: Any
    version: int
    issued_at: int | None


def _entries(value: Any) -> int:
    if value is None or isinstance(value, SiteEmergencyCommand):
        return 0 if value is None else 1
    if isinstance(value, HolidayCalendar):
        return len(value.holidays) + len(value.workdays)
    return len(value)


def _parse_body(kind: str, body: Any, version: int, site_id: str | None) -> Any:
    if kind == "watchlist":
        return Watchlist.from_body(body)
    if kind == "roster":
        return Roster.from_body(body)
    if kind == "calendar":
        return calendar_of(body)
    if kind == "emergency":
        return emergency_command(body, site_id=site_id)
    try:
        return TrustList.from_json(body, version=version)
    except TrustListError as exc:
        raise BundleError("malformed", f"trust body: {exc}") from exc


class Lists:
    """The lists in effect, swapped atomically; readers take one reference per use.

    Construct with the pinned hub bundle key and the directory of last-known-good bundle
    files, then :meth:`load`. Tests and the demo may pass lists directly.
    """

    def __init__(
        self,
        *,
        pinned_key: ed25519.Ed25519PublicKey | None = None,
        directory: Path | None = None,
        trust: TrustList | None = None,
        watchlist: Watchlist | None = None,
        roster: Roster | None = None,
        site_id: str | None = None,
    ) -> None:
        self._pinned_key = pinned_key
        self._directory = directory
        self._site_id = site_id  # an emergency bundle for another site is refused
        self._held: dict[str, _Held] = {
            "trust": _Held(trust if trust is not None else TrustList(), 0, None),
            "watchlist": _Held(watchlist if watchlist is not None else Watchlist(), 0, None),
            "roster": _Held(roster if roster is not None else Roster(), 0, None),
            "calendar": _Held(None, 0, None),
            "emergency": _Held(None, 0, None),
        }
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()  # install() may run in a worker thread
        self._subscribers: list[Callable[[str], None]] = []

    # ----- current lists

    @property
    def trust(self) -> TrustList:
        value: TrustList = self._held["trust"].value
        return value

    @property
    def watchlist(self) -> Watchlist:
        value: Watchlist = self._held["watchlist"].value
        return value

    @property
    def roster(self) -> Roster:
        value: Roster = self._held["roster"].value
        return value

    @property
    def calendar(self) -> HolidayCalendar | None:
        """The holiday calendar of the last good calendar bundle (None: none yet)."""
        value: HolidayCalendar | None = self._held["calendar"].value
        return value

    @property
    def emergency(self) -> SiteEmergencyCommand | None:
        """The hub's last emergency command for this site that was applied (None: none)."""
        value: SiteEmergencyCommand | None = self._held["emergency"].value
        return value

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(kind)`` after every swap (in the thread that installed)."""
        self._subscribers.append(callback)

    def watch(self, person_key: str, now: float) -> WatchEntry | None:
        """The watchlist entry in force for a person (policy's view)."""
        return self.watchlist.get(person_key, now)

    def worker(self, person_key: str, site_id: str, now: float) -> RosterEntry | None:
        """The person's valid registration at the site (policy's view)."""
        return self.roster.get(person_key, site_id, now)

    def invited(self, person_key: str, site_id: str, lane_id: str, zone: str, now: float) -> bool:
        """Whether an invitation admits the person here now (policy's view)."""
        return self.roster.invited(person_key, site_id, lane_id, zone, now)

    def version(self, kind: str) -> int:
        held: _Held = self._held[kind]
        return held.version

    # ----- bundles

    def path(self, kind: str) -> Path | None:
        return None if self._directory is None else self._directory / f"{kind}.bundle"

    def load(self) -> dict[str, str]:
        """Load every kind's last-known-good file; return {kind: problem} for those that could
        not be loaded (missing or refused), which stay empty (or as they were)."""
        if self._pinned_key is None:
            raise ValueError("Lists.load needs the pinned hub key")
        problems: dict[str, str] = {}
        for kind in KINDS:
            path = self.path(kind)
            if path is None:
                continue
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                problems[kind] = NOT_PUBLISHED
                continue
            except OSError as exc:
                problems[kind] = f"cannot read {path.name}: {exc.strerror}"
                continue
            try:
                self._accept(kind, data, persist=False)
            except BundleError as exc:
                problems[kind] = f"{exc.problem}: {exc}"
        self._problems = problems
        return problems

    def install(self, kind: str, data: bytes) -> int:
        """Accept a newer bundle of `kind`: verify, parse, persist as last-known-good, swap.

        Returns the new version. Raises BundleError (problem "stale", "bad_signature",
        "wrong_kind" or "malformed") and keeps the list in effect when the bundle is refused.
        An OSError from writing the file is raised after the swap: the new list is in effect
        but not on disk (the next install writes it again). A version that is visible is on
        disk whenever the write succeeded.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if self._pinned_key is None:
            raise ValueError("Lists.install needs the pinned hub key")
        return self._accept(kind, data, persist=True)

    def check(self, kind: str, data: bytes) -> tuple[Bundle, Any]:
        """Verify and parse a bundle newer than the one held, without installing it: the
        bundle and its parsed value (an SiteEmergencyCommand, a Roster, ...). BundleError as
        :meth:`install`."""
        if kind not in KINDS or self._pinned_key is None:
            raise ValueError(f"kind must be one of {KINDS}, and the hub key pinned")
        bundle = open_bundle(
            data, pinned_key=self._pinned_key, kind=kind, newer_than=self._held[kind].version
        )
        return bundle, _parse_body(kind, bundle.body, bundle.version, self._site_id)

    def _accept(self, kind: str, data: bytes, *, persist: bool) -> int:
        assert self._pinned_key is not None
        with self._lock:
            current = self._held[kind]
            bundle = open_bundle(
                data, pinned_key=self._pinned_key, kind=kind, newer_than=current.version
            )
            value = _parse_body(kind, bundle.body, bundle.version, self._site_id)
            # Persist before the swap, so a version anyone can see is already the
            # last-known-good on disk; a failed write still installs the list (then raises).
            write_failed: OSError | None = None
            if persist:
                try:
                    self._write(kind, data)
                except OSError as exc:
                    write_failed = exc
            self._held = {**self._held, kind: _Held(value, bundle.version, bundle.issued_at)}
            self._problems.pop(kind, None)
        for callback in self._subscribers:
            callback(kind)
        if write_failed is not None:
            raise write_failed
        return bundle.version

    def _write(self, kind: str, data: bytes) -> None:
        path = self.path(kind)
        if path is None:
            return
        write_atomic(path, data)

    def status(self, now: float) -> tuple[ListStatus, ...]:
        """Version, issued_at, age and size of each list, for /status and /metrics."""
        out = []
        for kind in KINDS:
            held = self._held[kind]
            out.append(
                ListStatus(
                    kind=kind,
                    version=held.version,
                    issued_at=held.issued_at,
                    age_s=None
                    if held.issued_at is None or kind in AGELESS
                    else now - held.issued_at,
                    entries=_entries(held.value),
                    problem=self._problems.get(kind),
                )
            )
        return tuple(out)
