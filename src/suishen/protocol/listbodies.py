"""Bodies of the list bundles (watchlist, roster): built by the hub, parsed by gateways.

Sans-I/O and pure: values in, CBOR-ready values out. The trust bundle's body is the trust file
document of protocol/trust.py and needs nothing here. Both sides use this one module, so the
hub (central, sync) never imports the gateway package (DESIGN §2: protocol <- sync <- central).

Bundle bodies (CBOR)::

    watchlist  {"format": 1, "keys": bytes 32*n (raw person keys), "flags": bytes n
                (bit 0: level deny, bit 1: route police), "expires": bytes 4*n (uint32 LE POSIX
                seconds, 0 = none), "reason_index": bytes 2*n (uint16 LE), "reasons": [text]}
    roster     {"format": 1, "workers": [{"person_key": hex, "site_id": text,
                "valid_from": int | null, "valid_to": int | null, "name_mask": text,
                "card": text | null, "group"?: text}], "invitations"?: [...],
                "time_profiles"?: {name: {mon..sun, holiday: ["HH:MM-HH:MM"], workday?}},
                "groups"?: {group: profile name}}
    calendar   the holiday calendar document (protocol/time_profiles.parse_calendar)
    emergency  {"site_id": text, "state": "on" | "off", "by": text, "note": text, "at": int}

The watchlist is columnar so that a 1,000,000-entry list is a handful of byte strings, not a
million CBOR maps (gateway/lists.py indexes the columns in place).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from suishen.protocol.errors import BundleError
from suishen.protocol.time_profiles import (
    HolidayCalendar,
    TimeProfile,
    TimeProfileError,
    parse_calendar,
    parse_profiles,
)
from suishen.protocol.vocabulary import AlertRoute, WatchLevel, values

T = TypeVar("T")

_LEVELS = values(WatchLevel)
_ROUTES = values(AlertRoute)

__all__ = [
    "BODY_FORMAT",
    "DENY_FLAG",
    "EMERGENCY_STATES",
    "KEY_BYTES",
    "POLICE_FLAG",
    "Invitation",
    "RosterItem",
    "RosterWorker",
    "SiteEmergencyCommand",
    "SiteHoursDocument",
    "WatchItem",
    "WatchlistColumns",
    "WatchlistRow",
    "calendar_of",
    "check_site_hours",
    "emergency_body",
    "emergency_command",
    "le_array",
    "le_bytes",
    "raw_key",
    "roster_body",
    "roster_hours",
    "roster_invitations",
    "roster_workers",
    "watchlist_body",
    "watchlist_columns",
]

BODY_FORMAT: Final = 1
KEY_BYTES: Final = 32
DENY_FLAG: Final = 1
POLICE_FLAG: Final = 2
MAX_EXPIRY: Final = 2**32 - 1  # uint32 seconds: the year 2106
_LITTLE: Final = sys.byteorder == "little"


class WatchItem(Protocol):
    """What a watchlist entry must say (gateway.lists.WatchEntry and WatchlistRow fit)."""

    @property
    def level(self) -> str: ...  # "notify" | "deny"
    @property
    def route(self) -> str: ...  # "police" | "staff"
    @property
    def reason(self) -> str: ...
    @property
    def expires_at(self) -> int | None: ...  # POSIX seconds; None = no expiry


class RosterItem(Protocol):
    """What a roster entry must say (gateway.lists.RosterEntry and RosterWorker fit)."""

    @property
    def site_id(self) -> str: ...
    @property
    def valid_from(self) -> int | None: ...
    @property
    def valid_to(self) -> int | None: ...
    @property
    def name_mask(self) -> str: ...
    @property
    def card(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchlistRow:
    """A watchlist entry as the hub holds it (level and route as their text values)."""

    level: str
    route: str
    reason: str
    expires_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterWorker:
    """A roster entry as the hub holds it, and as parsed from a body."""

    site_id: str
    valid_from: int | None = None
    valid_to: int | None = None
    name_mask: str = ""
    card: str | None = None
    group: str | None = None  # roster group: its time profile is the gateway's [hours] groups


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitation:
    """A visitor invited to a site for a window, at some lanes or zones (none listed: all)."""

    site_id: str
    valid_from: int  # POSIX seconds, inclusive
    valid_to: int  # POSIX seconds, inclusive
    lanes: frozenset[str] = frozenset()
    zones: frozenset[str] = frozenset()

    def admits(self, site_id: str, lane_id: str, zone: str, now: float) -> bool:
        return (
            self.site_id == site_id
            and self.valid_from <= now <= self.valid_to
            and (not self.lanes or lane_id in self.lanes)
            and (not self.zones or zone in self.zones)
        )


def raw_key(person_key: str | bytes) -> bytes | None:
    """32 raw bytes of a person key given as 64 hex characters or 32 bytes; None if neither."""
    if isinstance(person_key, bytes):
        return person_key if len(person_key) == KEY_BYTES else None
    if len(person_key) != 2 * KEY_BYTES:
        return None
    try:
        return bytes.fromhex(person_key)
    except ValueError:
        return None


def le_array(typecode: str, data: bytes) -> array[int]:
    """An array of little-endian integers from the wire."""
    values = array(typecode)
    values.frombytes(data)
    if not _LITTLE:  # the wire format is little-endian
        values.byteswap()
    return values


def le_bytes(values: array[int]) -> bytes:
    """An array's integers as little-endian wire bytes."""
    if _LITTLE:
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


# --------------------------------------------------------------------------- watchlist


def watchlist_body(entries: Iterable[tuple[str | bytes, WatchItem]]) -> dict[str, Any]:
    """The bundle body for a watchlist; a later entry for the same key wins on look-up."""
    keys = bytearray()
    flags = bytearray()
    expires = array("I")
    reason_index = array("H")
    reasons: dict[str, int] = {}
    for person_key, entry in entries:
        key = raw_key(person_key)
        if key is None:
            raise ValueError("a person_key is 64 hex characters or 32 bytes")
        if entry.level not in _LEVELS or entry.route not in _ROUTES:
            raise ValueError("level must be notify|deny and route police|staff")
        if entry.expires_at is not None and not 0 <= entry.expires_at <= MAX_EXPIRY:
            raise ValueError("expires_at must be POSIX seconds in 0..2**32-1")
        keys += key
        flags.append(
            (DENY_FLAG if entry.level == "deny" else 0)
            | (POLICE_FLAG if entry.route == "police" else 0)
        )
        expires.append(entry.expires_at or 0)
        index = reasons.setdefault(entry.reason, len(reasons))
        if index > 0xFFFF:
            raise ValueError("a watchlist holds at most 65536 distinct reasons")
        reason_index.append(index)
    return {
        "format": BODY_FORMAT,
        "keys": bytes(keys),
        "flags": bytes(flags),
        "expires": le_bytes(expires),
        "reason_index": le_bytes(reason_index),
        "reasons": list(reasons),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchlistColumns:
    """A checked watchlist body: equal-length columns, ready to be indexed."""

    keys: bytes
    flags: bytes
    expires: array[int]
    reason_index: array[int]
    reasons: tuple[str, ...]


def watchlist_columns(body: Any) -> WatchlistColumns:
    """Check a watchlist body; raise BundleError("malformed") naming the problem."""
    if not isinstance(body, Mapping) or body.get("format") != BODY_FORMAT:
        raise BundleError("malformed", f"watchlist body must be a format-{BODY_FORMAT} map")
    keys, flags = body.get("keys"), body.get("flags")
    expires, index = body.get("expires"), body.get("reason_index")
    reasons = body.get("reasons")
    if not (
        isinstance(keys, bytes)
        and isinstance(flags, bytes)
        and isinstance(expires, bytes)
        and isinstance(index, bytes)
    ):
        raise BundleError("malformed", "watchlist columns must be byte strings")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise BundleError("malformed", "watchlist reasons must be a list of text")
    count = len(flags)
    if len(keys) != KEY_BYTES * count or len(expires) != 4 * count or len(index) != 2 * count:
        raise BundleError("malformed", "watchlist columns differ in length")
    return WatchlistColumns(
        keys=keys,
        flags=flags,
        expires=le_array("I", expires),
        reason_index=le_array("H", index),
        reasons=tuple(reasons),
    )


# --------------------------------------------------------------------------- roster


def roster_body(
    entries: Iterable[tuple[str, RosterItem]],
    invitations: Iterable[tuple[str, Invitation]] = (),
    *,
    time_profiles: Mapping[str, Any] | None = None,
    groups: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The bundle body for a roster (a worker's "group" only when it has one; "invitations",
    "time_profiles" and "groups" only when there are some)."""
    workers = []
    for person_key, e in entries:
        worker: dict[str, Any] = {
            "person_key": person_key,
            "site_id": e.site_id,
            "valid_from": e.valid_from,
            "valid_to": e.valid_to,
            "name_mask": e.name_mask,
            "card": e.card,
        }
        group = getattr(e, "group", None)  # optional in RosterItem: older holders have none
        if group is not None:
            worker["group"] = group
        workers.append(worker)
    body: dict[str, Any] = {"format": BODY_FORMAT, "workers": workers}
    invited = [
        {
            "person_key": person_key,
            "site_id": i.site_id,
            "valid_from": i.valid_from,
            "valid_to": i.valid_to,
            "lanes": sorted(i.lanes),
            "zones": sorted(i.zones),
        }
        for person_key, i in invitations
    ]
    if invited:
        body["invitations"] = invited
    if time_profiles:
        body["time_profiles"] = {name: dict(p) for name, p in time_profiles.items()}
    if groups:
        body["groups"] = dict(groups)
    return body


def roster_workers(body: Any) -> list[tuple[str, RosterWorker]]:
    """Check a roster body; raise BundleError("malformed") naming the problem (and worker)."""
    if not isinstance(body, Mapping) or body.get("format") != BODY_FORMAT:
        raise BundleError("malformed", f"roster body must be a format-{BODY_FORMAT} map")
    workers = body.get("workers")
    if not isinstance(workers, list):
        raise BundleError("malformed", "roster body needs a 'workers' list")
    return _each(workers, "workers", _roster_worker)


def roster_invitations(body: Any) -> list[tuple[str, Invitation]]:
    """The invitations of a (checked) roster body; BundleError("malformed") naming the bad one."""
    raw_list = body.get("invitations", []) if isinstance(body, Mapping) else None
    if not isinstance(raw_list, list):
        raise BundleError("malformed", "roster 'invitations' must be a list")
    return _each(raw_list, "invitations", _invitation)


def _each(items: list[Any], label: str, parse: Callable[[Any], T]) -> list[T]:
    """``parse`` of each item; BundleError("malformed") naming the first bad one."""
    out = []
    for i, raw in enumerate(items):
        try:
            out.append(parse(raw))
        except (TypeError, ValueError, KeyError) as exc:
            raise BundleError("malformed", f"{label}[{i}]: {exc}") from exc
    return out


def _invitation(raw: Any) -> tuple[str, Invitation]:
    if not isinstance(raw, Mapping):
        raise TypeError("an invitation must be a map")
    person_key, site_id = raw["person_key"], raw["site_id"]
    if not isinstance(person_key, str) or raw_key(person_key) is None:
        raise ValueError("person_key must be 64 hex characters")
    if not isinstance(site_id, str):
        raise TypeError("site_id must be text")
    valid_from, valid_to = _optional_int(raw, "valid_from"), _optional_int(raw, "valid_to")
    if valid_from is None or valid_to is None or valid_to < valid_from:
        raise ValueError("valid_from and valid_to are required, and end after the start")
    lanes, zones = raw.get("lanes", []), raw.get("zones", [])
    for name, items in (("lanes", lanes), ("zones", zones)):
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise TypeError(f"{name} must be a list of text")
    return person_key, Invitation(
        site_id=site_id,
        valid_from=valid_from,
        valid_to=valid_to,
        lanes=frozenset(lanes),
        zones=frozenset(zones),
    )


def _optional_int(raw: Mapping[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name} must be an integer or null")
    return value


def _roster_worker(raw: Any) -> tuple[str, RosterWorker]:
    if not isinstance(raw, Mapping):
        raise TypeError("a worker must be a map")
    person_key, site_id = raw["person_key"], raw["site_id"]
    name_mask, card, group = raw.get("name_mask", ""), raw.get("card"), raw.get("group")
    if not isinstance(person_key, str) or not isinstance(site_id, str):
        raise TypeError("person_key and site_id must be text")
    if not isinstance(name_mask, str) or (card is not None and not isinstance(card, str)):
        raise TypeError("name_mask and card must be text")
    if group is not None and not isinstance(group, str):
        raise TypeError("group must be text or absent")
    return person_key, RosterWorker(
        site_id=site_id,
        valid_from=_optional_int(raw, "valid_from"),
        valid_to=_optional_int(raw, "valid_to"),
        name_mask=name_mask,
        card=card,
        group=group,
    )


# --------------------------------------------------------------------------- hours


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteHoursDocument:
    """A site's time profiles and roster groups, checked: what `hub site hours` stores and what
    a roster bundle carries. ``raw`` keeps each profile's table as given (the bundle body)."""

    profiles: Mapping[str, TimeProfile]
    raw: Mapping[str, Mapping[str, Any]]
    groups: Mapping[str, str]


def check_site_hours(
    time_profiles: Any, groups: Any, *, groups_field: str = "hours.groups"
) -> SiteHoursDocument:
    """Check profiles (``{name: {mon..sun, holiday, workday}}``, as the gateway's
    [time_profiles.NAME]) and groups (``{group: profile}``, as its [hours] groups); raise
    TimeProfileError naming the key (``time_profiles.day.mon[1]``, ``hours.groups.crew``)."""
    profiles = parse_profiles(time_profiles, field="time_profiles")
    if not isinstance(groups, Mapping):
        raise TimeProfileError(groups_field, "must be a table of group = profile name")
    checked: dict[str, str] = {}
    for group, name in groups.items():
        field = f"{groups_field}.{group}"
        if not isinstance(group, str) or not 1 <= len(group) <= 64:
            raise TimeProfileError(field, "a group name is 1-64 characters")
        if not isinstance(name, str) or name not in profiles:
            raise TimeProfileError(field, f"no time_profiles.{name}")
        checked[group] = name
    return SiteHoursDocument(
        profiles=profiles,
        raw={name: dict(time_profiles[name]) for name in profiles},
        groups=checked,
    )


def roster_hours(body: Any) -> SiteHoursDocument:
    """The time profiles and groups of a roster body (none: empty); BundleError("malformed")
    naming the key when they do not check."""
    if not isinstance(body, Mapping):
        raise BundleError("malformed", "roster body must be a map")
    try:
        return check_site_hours(
            body.get("time_profiles", {}), body.get("groups", {}), groups_field="groups"
        )
    except TimeProfileError as exc:
        raise BundleError("malformed", f"roster {exc}") from exc


# --------------------------------------------------------------------------- calendar


def calendar_of(body: Any) -> HolidayCalendar:
    """The holiday calendar of a calendar bundle body; BundleError("malformed") naming the
    field (``calendar.holidays[3]: not a date``)."""
    try:
        return parse_calendar(body)
    except TimeProfileError as exc:
        raise BundleError("malformed", str(exc)) from exc


# --------------------------------------------------------------------------- emergency

EMERGENCY_STATES: Final = ("on", "off")


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteEmergencyCommand:
    """The hub's emergency command for a site: on (declare) or off (end)."""

    site_id: str
    active: bool
    by: str  # the hub user
    note: str = ""
    at: int = 0  # POSIX seconds, when the hub user gave it


def emergency_body(command: SiteEmergencyCommand) -> dict[str, Any]:
    """The emergency bundle body (contract13.md)."""
    return {
        "site_id": command.site_id,
        "state": "on" if command.active else "off",
        "by": command.by,
        "note": command.note,
        "at": command.at,
    }


def emergency_command(body: Any, *, site_id: str | None = None) -> SiteEmergencyCommand:
    """Check an emergency body; BundleError("malformed") naming the field, or
    BundleError("wrong_site") when it is for another site than ``site_id``."""
    if not isinstance(body, Mapping):
        raise BundleError("malformed", "emergency body must be a map")
    site, state, by = body.get("site_id"), body.get("state"), body.get("by")
    note, at = body.get("note", ""), body.get("at")
    for name, value in (("site_id", site), ("by", by), ("note", note)):
        if not isinstance(value, str) or (name != "note" and not value):
            raise BundleError("malformed", f"emergency.{name} must be text")
    if state not in EMERGENCY_STATES:
        raise BundleError("malformed", "emergency.state must be on or off")
    if isinstance(at, bool) or not isinstance(at, int) or at < 0:
        raise BundleError("malformed", "emergency.at must be POSIX seconds")
    if site_id is not None and site != site_id:
        raise BundleError("wrong_site", f"emergency.site_id is {site!r}, not this site")
    return SiteEmergencyCommand(
        site_id=str(site), active=state == "on", by=str(by), note=note, at=at
    )
