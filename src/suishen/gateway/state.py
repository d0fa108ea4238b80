"""What the gateway knows about its site right now, rebuilt from the journal on start (DESIGN §5).

SiteState holds:

- occupancy: who is inside, per zone (``person_key -> zone`` plus ``zone -> set``); a person
  is in at most one zone, an entry at zone Z moves them there, an exit removes them. The
  site's count is the number of distinct people inside.
- anti-passback: a person's last direction is IN exactly while they are inside (an exit
  removes them, so "last direction OUT" and "never seen" are both None): memory is bounded by
  the people inside, not by everyone ever seen.
- the replay cache: code id (cti) -> (lane, expiry) for codes let in through entry lanes;
  entries expire ``replay_ttl_s`` after the scan (a code lives at most 300 s plus clock
  skew, so the default 360 s covers its whole lifetime) and the cache holds at most
  ``replay_max`` entries, dropping the oldest first.
- open hotel stays: stay id -> guests (person_key -> minor flag) with an O(1) adult count,
  the stay of each guest, the open stay of each room, and the last check-in of each desk lane
  (for the party window, see policy.py).
- daily attendance (construction sites): person_key -> first entry time today.

Everything changes only through :meth:`SiteState.apply`, called with each journal record
(ScanDecided, PassageRecorded) live and again, in seq order, by :meth:`SiteState.replay` on
start, so the state after a restart equals the state the journal describes.

When occupancy changes: a lane whose gate reports passage (``sensor=True``) moves people on
a PASSED PassageRecorded; a lane without a sensor moves them on its allowed ScanDecided.
Replay must pass the same per-lane flag (``sensor_lanes``). Code ids, stays and watch data
follow the ScanDecided whatever the lane.

Entries in flight: between an allowed entry at a sensor lane and its passage report, the
person is not inside yet but may be any moment, so :meth:`count_with_entering` (what the
capacity rule reads) counts them too; otherwise lanes deciding at the same time could each
take the last place under a hard capacity. A lane has at most one entry in flight (it serves
one person at a time); the lane's passage record, or its next scan, ends it. Nothing is in
flight after a restart, so :meth:`replay` clears them.

Daily reset: at the configured local time (``daily_reset`` in ``timezone``) occupancy,
anti-passback and attendance are cleared, except for guests with an open hotel stay (who
sleep inside); stays and the replay cache are never reset. The reset happens in
:meth:`advance` (the lane calls it with the clock) and before applying any record stamped
after a reset instant, so live and replayed state agree.

All operations are O(1) (amortised for the cache purge), except :meth:`snapshot` and
:meth:`people_inside`, which copy.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from suishen.gateway.records import (
    Direction,
    PassageOutcomeKind,
    PassageRecorded,
    ScanDecided,
    SiteKind,
    Verdict,
)

__all__ = ["SiteState", "Stay"]

DEFAULT_REPLAY_TTL_S: Final = 360
DEFAULT_REPLAY_MAX: Final = 131_072


@dataclass(slots=True)
class Stay:
    """An open hotel stay (mutable, owned by SiteState; read it, do not change it)."""

    stay_id: str
    lane_id: str
    opened_at: float
    room: str | None = None
    guests: dict[str, bool | None] = field(default_factory=dict)  # person_key -> minor
    adults: int = 0  # guests known not to be minors

    @property
    def has_adult(self) -> bool:
        return self.adults > 0


class SiteState:
    """Occupancy, anti-passback, replay cache, stays and attendance of one site."""

    def __init__(
        self,
        *,
        site_id: str,
        kind: SiteKind,
        daily_reset: dt.time | None = None,
        timezone: str = "Asia/Shanghai",
        replay_ttl_s: float = DEFAULT_REPLAY_TTL_S,
        replay_max: int = DEFAULT_REPLAY_MAX,
    ) -> None:
        if replay_max < 1:
            raise ValueError("replay_max must be at least 1")
        self.site_id = site_id
        self.kind = kind
        self._reset_at = daily_reset
        self._tz = zoneinfo.ZoneInfo(timezone)
        self._replay_ttl_s = replay_ttl_s
        self._replay_max = replay_max
        self._zone_of: dict[str, str] = {}
        self._inside: dict[str, set[str]] = {}
        self._replay: dict[str, tuple[str, float]] = {}  # insertion order ~ expiry order
        self._stays: dict[str, Stay] = {}
        self._stay_of: dict[str, str] = {}
        self._room_stay: dict[str, str] = {}
        self._desk_last: dict[str, tuple[str, float]] = {}  # desk lane -> (stay_id, ts)
        self._attendance: dict[str, float] = {}
        self._entering: dict[str, str] = {}  # sensor lane -> person let in, passage pending
        self._next_reset: float | None = None
        self.last_reset: float | None = None
        self.applied = 0

    # ----------------------------------------------------------------- reading

    def zone_of(self, person_key: str) -> str | None:
        """The zone a person is inside, or None when outside."""
        return self._zone_of.get(person_key)

    def last_direction(self, person_key: str) -> Direction | None:
        """IN while the person is inside; None when they went out (or were never seen)."""
        return Direction.IN if person_key in self._zone_of else None

    def count(self, zone: str | None = None) -> int:
        """People inside the site (zone None) or inside one zone."""
        if zone is None:
            return len(self._zone_of)
        return len(self._inside.get(zone, ()))

    def count_with_entering(self) -> int:
        """People inside the site plus those let in at a sensor lane whose passage is not
        reported yet (each person once): the count a capacity limit applies to."""
        entering = {p for p in self._entering.values() if p not in self._zone_of}
        return len(self._zone_of) + len(entering)

    def people_inside(self, zone: str | None = None) -> frozenset[str]:
        if zone is None:
            return frozenset(self._zone_of)
        return frozenset(self._inside.get(zone, ()))

    def zones(self) -> dict[str, int]:
        return {zone: len(people) for zone, people in self._inside.items() if people}

    def replay_lane(self, cti: str, now: float) -> str | None:
        """The lane that let this code id in within its lifetime, or None."""
        seen = self._replay.get(cti)
        if seen is None or seen[1] <= now:
            return None
        return seen[0]

    def replay_size(self) -> int:
        return len(self._replay)

    def stay(self, stay_id: str) -> Stay | None:
        return self._stays.get(stay_id)

    def stay_of(self, person_key: str) -> Stay | None:
        stay_id = self._stay_of.get(person_key)
        return None if stay_id is None else self._stays.get(stay_id)

    def open_stays(self) -> int:
        return len(self._stays)

    def stay_for_checkin(
        self, lane_id: str, now: float, *, room: str | None = None, window_s: float = 120
    ) -> str:
        """The stay a check-in at this desk joins: the room's open stay when the desk names a
        room; else the desk's last stay if its last check-in was within `window_s` (one party
        checked in together); else a new stay id."""
        if room is not None:
            return self._room_stay.get(room) or f"room:{room}@{now:.3f}"
        last = self._desk_last.get(lane_id)
        if last is not None and now - last[1] <= window_s and last[0] in self._stays:
            return last[0]
        return f"{lane_id}@{now:.3f}"

    def attended(self, person_key: str) -> float | None:
        """When the person first came in today (construction sites), or None."""
        return self._attendance.get(person_key)

    def attendance_count(self) -> int:
        return len(self._attendance)

    def snapshot(self) -> dict[str, Any]:
        """A plain comparable copy of the whole state (tests, /status)."""
        return {
            "inside": dict(self._zone_of),
            "zones": {z: sorted(p) for z, p in self._inside.items() if p},
            "replay": dict(self._replay),
            "stays": {
                sid: (s.lane_id, s.room, s.opened_at, dict(s.guests), s.adults)
                for sid, s in self._stays.items()
            },
            "rooms": dict(self._room_stay),
            "desks": dict(self._desk_last),
            "attendance": dict(self._attendance),
            "last_reset": self.last_reset,
        }

    # ----------------------------------------------------------------- changing

    def advance(self, now: float) -> bool:
        """Run the daily reset if a reset instant has passed; return whether it ran."""
        if self._reset_at is None:
            return False
        if self._next_reset is None:
            self._next_reset = self._reset_after(now)
            return False
        if now < self._next_reset:
            return False
        self.last_reset = self._next_reset
        self._daily_reset()
        self._next_reset = self._reset_after(now)
        return True

    def _reset_after(self, ts: float) -> float:
        """The first reset instant strictly after ts."""
        assert self._reset_at is not None
        local = dt.datetime.fromtimestamp(ts, self._tz)
        day = local.date()
        for _ in range(3):
            candidate = dt.datetime.combine(day, self._reset_at, tzinfo=self._tz).timestamp()
            if candidate > ts:
                return candidate
            day += dt.timedelta(days=1)
        raise AssertionError("no reset instant within three days")  # pragma: no cover

    def _daily_reset(self) -> None:
        for person_key in list(self._zone_of):
            if person_key not in self._stay_of:
                self._leave(person_key)
        self._attendance.clear()

    def apply(self, record: ScanDecided | PassageRecorded, *, sensor: bool = False) -> None:
        """Apply one journal record; `sensor` says whether its lane's gate reports passage."""
        self.advance(record.ts)
        self.applied += 1
        self._entering.pop(record.lane_id, None)
        if isinstance(record, PassageRecorded):
            if sensor and record.outcome is PassageOutcomeKind.PASSED and record.person_key:
                self._move(record.person_key, record.direction, record.zone, record.ts)
            return
        if record.decision.verdict is not Verdict.ALLOW:
            return
        direction = record.direction
        if direction is Direction.IN and record.cti:
            self._remember_code(record.cti, record.lane_id, record.ts)
        person = record.person
        if person is None:
            return
        if direction is Direction.CHECKIN:
            self._check_in(record, person.person_key, person.minor)
        elif direction is Direction.CHECKOUT:
            self._check_out(person.person_key)
        elif not sensor:
            self._move(person.person_key, direction, record.zone, record.ts)
        elif direction is Direction.IN:
            self._entering[record.lane_id] = person.person_key

    def replay(
        self,
        records: Iterable[ScanDecided | PassageRecorded],
        *,
        sensor_lanes: Container[str] = frozenset(),
        now: float | None = None,
    ) -> int:
        """Apply journal records in seq order (start-up); then advance to `now`."""
        count = 0
        for record in records:
            self.apply(record, sensor=record.lane_id in sensor_lanes)
            count += 1
        self._entering.clear()  # nothing is in flight after a restart
        if now is not None:
            self.advance(now)
        return count

    # ----- occupancy and anti-passback

    def _move(self, person_key: str, direction: Direction, zone: str, ts: float) -> None:
        if direction is Direction.IN:
            self._leave(person_key)
            self._zone_of[person_key] = zone
            self._inside.setdefault(zone, set()).add(person_key)
            if self.kind is SiteKind.CONSTRUCTION:
                self._attendance.setdefault(person_key, ts)
        elif direction is Direction.OUT:
            self._leave(person_key)

    def _leave(self, person_key: str) -> None:
        zone = self._zone_of.pop(person_key, None)
        if zone is not None:
            self._inside[zone].discard(person_key)

    # ----- replay cache

    def _remember_code(self, cti: str, lane_id: str, ts: float) -> None:
        cache = self._replay
        if cti in cache:
            return  # the first lane that let it in stays on record
        expiry = ts + self._replay_ttl_s
        cache[cti] = (lane_id, expiry)
        self._purge(ts)
        while len(cache) > self._replay_max:
            del cache[next(iter(cache))]

    def _purge(self, now: float) -> None:
        cache = self._replay
        while cache:
            oldest = next(iter(cache))
            if cache[oldest][1] > now:
                return
            del cache[oldest]

    # ----- hotel stays

    def _check_in(self, record: ScanDecided, person_key: str, minor: bool | None) -> None:
        stay_id = record.decision.stay_id or f"{record.lane_id}@{record.ts:.3f}"
        current = self._stay_of.get(person_key)
        if current is not None and current != stay_id:
            self._remove_guest(person_key)
        stay = self._stays.get(stay_id)
        if stay is None:
            room = None
            if stay_id.startswith("room:"):
                room = stay_id[5:].rpartition("@")[0] or None
            stay = Stay(stay_id=stay_id, lane_id=record.lane_id, opened_at=record.ts, room=room)
            self._stays[stay_id] = stay
            if room is not None:
                self._room_stay[room] = stay_id
        if person_key not in stay.guests:
            stay.guests[person_key] = minor
            if minor is False:
                stay.adults += 1
        self._stay_of[person_key] = stay_id
        self._desk_last[record.lane_id] = (stay_id, record.ts)

    def _remove_guest(self, person_key: str) -> None:
        stay_id = self._stay_of.pop(person_key, None)
        stay = None if stay_id is None else self._stays.get(stay_id)
        if stay is None:
            return
        if stay.guests.pop(person_key, None) is False:
            stay.adults -= 1
        if not stay.guests:
            self._close(stay)

    def _check_out(self, person_key: str) -> None:
        """A check-out closes the guest's whole stay (the room checks out)."""
        stay = self.stay_of(person_key)
        if stay is not None:
            self._close(stay)

    def _close(self, stay: Stay) -> None:
        for guest in stay.guests:
            self._stay_of.pop(guest, None)
        self._stays.pop(stay.stay_id, None)
        if stay.room is not None and self._room_stay.get(stay.room) == stay.stay_id:
            del self._room_stay[stay.room]
