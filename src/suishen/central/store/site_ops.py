"""Site operations sent down as signed bundles (issue 13): the holiday calendar, a site's time
profiles and roster groups, and the hub's emergency command for a site (DESIGN §5, §6).

Each change runs in one transaction that bumps its bundle's version (``lists.bump_version``)
and writes an audit row, so the bundle service signs the new state and the gateways' long polls
wake (the trigger of deploy/sql/0002).  Every input is checked whole before anything is
written (protocol/time_profiles, protocol/listbodies): a bad file is refused with a
:class:`SiteOpsError` naming the key or field, and nothing is stored.

- ``publish_calendar(con, document, actor=)``: a new holiday calendar (the calendar bundle);
  its own "version" must be above the one published before.
- ``set_site_hours(con, site_id, document, actor=)``: replace a site's time profiles and roster
  groups (the document is the gateway's ``[time_profiles.NAME]`` and ``[hours] groups``, as a
  table); bumps the roster version (the roster bundle carries them).
- ``set_worker_group(con, site_id, person_key, group, actor=)``: a worker's roster group.
- ``site_emergency(con, site_id, active=, note=, by=)``: an emergency command for a site (the
  site's emergency bundle).

Exceptions::

    SiteOpsError (BadRequest, ValueError)   a bad calendar, hours file or argument; .field
    NotFound                                no such site (or worker)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Final

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, NotFound
from suishen.central.queries.sitekind import check_site_id
from suishen.central.store import audit
from suishen.central.store.lists import bump_version
from suishen.protocol.listbodies import (
    SiteEmergencyCommand,
    check_site_hours,
    raw_key,
)
from suishen.protocol.time_profiles import TimeProfileError, parse_calendar

MAX_NOTE: Final = 200  # as the gateway keeps (protocol/emergency.py)
MAX_GROUP: Final = 64
HOURS_KEYS: Final = frozenset({"time_profiles", "hours"})


class SiteOpsError(BadRequest, ValueError):
    """A calendar, hours document or command argument that is not acceptable; ``field`` names
    the key (``calendar.holidays[2]``, ``time_profiles.day.mon[0]``, ``hours.groups.crew``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field=field)
        self.field = field
        self.problem = problem


async def _require_site(con: Connection, site_id: str) -> str:
    check_site_id(site_id)
    if not await con.fetchval("SELECT 1 FROM sites WHERE site_id = $1", site_id):
        raise NotFound(f"no site {site_id!r}", site_id=site_id)
    return site_id


# --------------------------------------------------------------------------- calendar


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PublishedCalendar:
    version: int  # the calendar bundle's version
    calendar_version: int  # the document's own
    region: str
    document: dict[str, Any]
    published_by: str
    published_at: dt.datetime


async def publish_calendar(con: Connection, document: Any, *, actor: str) -> int:
    """Publish a holiday calendar document (data/holidays-cn.json's format); return the new
    calendar bundle version. SiteOpsError naming the field when it does not check, or when its
    "version" is not above the one published before; nothing is stored then."""
    try:
        calendar = parse_calendar(document)
    except TimeProfileError as exc:
        raise SiteOpsError(exc.field, exc.problem) from None
    async with con.transaction():
        await con.execute("SELECT version FROM bundle_versions WHERE kind = 'calendar' FOR UPDATE")
        held = await con.fetchval("SELECT max(calendar_version) FROM calendars")
        if held is not None and calendar.version <= held:
            raise SiteOpsError(
                "calendar.version",
                f"{calendar.version} is not above the published calendar's {held}",
            )
        version = await bump_version(con, "calendar")
        await con.execute(
            "INSERT INTO calendars (version, calendar_version, region, document, published_by) "
            "VALUES ($1, $2, $3, $4, $5)",
            version,
            calendar.version,
            calendar.region,
            json.dumps(document, ensure_ascii=False),
            actor,
        )
        await audit.record(
            con, actor, "calendar_publish", calendar_version=calendar.version,
            region=calendar.region, holidays=len(calendar.holidays),
            workdays=len(calendar.workdays), version=version,
        )  # fmt: skip
    return version


async def current_calendar(con: Connection) -> PublishedCalendar | None:
    """The newest published calendar, or None when none was."""
    row = await con.fetchrow(
        "SELECT version, calendar_version, region, document::text AS document, published_by, "
        "published_at FROM calendars ORDER BY version DESC LIMIT 1"
    )
    if row is None:
        return None
    return PublishedCalendar(**{**dict(row), "document": json.loads(row["document"])})


# --------------------------------------------------------------------------- site hours


def check_hours_document(document: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The (profiles, groups) of a site hours document ``{"time_profiles": {...}, "hours":
    {"groups": {...}}}``; SiteOpsError naming the key when anything does not check."""
    if not isinstance(document, Mapping):
        raise SiteOpsError("hours file", "must be a table")
    unknown = sorted(set(document) - HOURS_KEYS)
    if unknown:
        raise SiteOpsError(unknown[0], "unknown key (time_profiles and hours only)")
    hours = document.get("hours", {})
    if not isinstance(hours, Mapping):
        raise SiteOpsError("hours", "must be a table")
    extra = sorted(set(hours) - {"groups"})
    if extra:
        raise SiteOpsError(f"hours.{extra[0]}", "unknown key (groups only, from the hub)")
    try:
        checked = check_site_hours(document.get("time_profiles", {}), hours.get("groups", {}))
    except TimeProfileError as exc:
        raise SiteOpsError(exc.field, exc.problem) from None
    return {k: dict(v) for k, v in checked.raw.items()}, dict(checked.groups)


async def set_site_hours(con: Connection, site_id: str, document: Any, *, actor: str) -> int:
    """Replace ``site_id``'s time profiles and roster groups; return the new roster version."""
    profiles, groups = check_hours_document(document)
    async with con.transaction():
        await _require_site(con, site_id)
        version = await bump_version(con, "roster")
        await con.execute("DELETE FROM site_hour_groups WHERE site_id = $1", site_id)
        await con.execute("DELETE FROM site_time_profiles WHERE site_id = $1", site_id)
        await con.executemany(
            "INSERT INTO site_time_profiles (site_id, name, profile) VALUES ($1, $2, $3)",
            [(site_id, name, json.dumps(body)) for name, body in profiles.items()],
        )
        await con.executemany(
            "INSERT INTO site_hour_groups (site_id, group_name, profile) VALUES ($1, $2, $3)",
            [(site_id, group, name) for group, name in groups.items()],
        )
        await audit.record(
            con, actor, "site_hours", site_id=site_id, profiles=sorted(profiles),
            groups=groups, version=version,
        )  # fmt: skip
    return version


async def site_hours(
    con: Connection, site_id: str | None
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A site's stored (profiles, groups), as the roster bundle carries them."""
    rows = await con.fetch(
        "SELECT name, profile::text AS profile FROM site_time_profiles WHERE site_id = $1 "
        "ORDER BY name",
        site_id,
    )
    groups = await con.fetch(
        "SELECT group_name, profile FROM site_hour_groups WHERE site_id = $1 ORDER BY group_name",
        site_id,
    )
    return (
        {r["name"]: json.loads(r["profile"]) for r in rows},
        {r["group_name"]: r["profile"] for r in groups},
    )


async def set_worker_group(
    con: Connection, site_id: str, person_key: str, group: str | None, *, actor: str
) -> int:
    """Put a registered worker in a roster group (None: none); return the new roster version."""
    if raw_key(person_key) is None or person_key != person_key.lower():
        raise SiteOpsError("person_key", "64 lower-case hex characters")
    if group is not None and not 1 <= len(group) <= MAX_GROUP:
        raise SiteOpsError("group", f"1 to {MAX_GROUP} characters")
    async with con.transaction():
        await _require_site(con, site_id)
        version = await bump_version(con, "roster")
        updated = await con.fetchval(
            "UPDATE workers SET work_group = $3, version = $4 WHERE site_id = $1 "
            "AND person_key = $2 AND removed_at IS NULL RETURNING 1",
            site_id,
            person_key,
            group,
            version,
        )
        if not updated:
            raise NotFound(f"no worker {person_key[:8]}... at {site_id!r}", site_id=site_id)
        await audit.record(
            con, actor, "worker_group", person_key=person_key, site_id=site_id, group=group,
            version=version,
        )  # fmt: skip
    return version


# --------------------------------------------------------------------------- emergency


async def site_emergency(
    con: Connection,
    site_id: str,
    *,
    active: bool,
    by: str,
    note: str = "",
    user_id: int | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Record an emergency command for a site (on: ``active``) and publish it as the site's
    emergency bundle; return its version (the version sequence is shared by all sites)."""
    if not by:
        raise SiteOpsError("by", "the hub user giving the command")
    if len(note) > MAX_NOTE or any(ord(c) < 0x20 for c in note):
        raise SiteOpsError("note", f"at most {MAX_NOTE} characters, one line")
    async with con.transaction():
        await _require_site(con, site_id)
        version = await bump_version(con, "emergency")
        await con.execute(
            "INSERT INTO site_emergencies (version, site_id, active, note, by_user, at) "
            "VALUES ($1, $2, $3, $4, $5, coalesce($6, now()))",
            version,
            site_id,
            active,
            note,
            by,
            at,
        )
        await audit.record(
            con, by, "site_emergency", site_id=site_id, user_id=user_id,
            state="on" if active else "off", note=note, version=version,
        )  # fmt: skip
    return version


async def latest_emergency(
    con: Connection, site_id: str | None
) -> tuple[int, SiteEmergencyCommand] | None:
    """The site's newest emergency command and its version, or None when it never had one."""
    row = await con.fetchrow(
        "SELECT version, site_id, active, note, by_user, at FROM site_emergencies "
        "WHERE site_id = $1 ORDER BY version DESC LIMIT 1",
        site_id,
    )
    if row is None:
        return None
    return row["version"], SiteEmergencyCommand(
        site_id=row["site_id"],
        active=row["active"],
        by=row["by_user"],
        note=row["note"],
        at=int(row["at"].timestamp()),
    )
