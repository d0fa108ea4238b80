"""Emergency release as values (DESIGN §5, issue 13): the state, its transition table, the
alarm input's debounce and the persisted form. Sans-I/O: time is a parameter.

The table (``transition``)::

    state     command               -> state     changed   note
    normal    declare (any source)  -> active    yes       since = now, source/actor/note kept
    active    declare (any source)  -> active    no        idempotent: the first declaration wins
    normal    end (any source)      -> normal    no
    active    end (LOCAL or HUB)    -> normal    yes
    active    end (ALARM)           -> active    no        the input clearing never ends it

The alarm input's debounce (``AlarmDebounce``): a raw level must hold for ``debounce_s``
before it counts as an edge, so a flapping input (set/clear/set within milliseconds) gives one
edge; only the rising edge of a stable level declares.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AlarmDebounce",
    "EmergencyCommand",
    "EmergencySource",
    "EmergencyState",
    "EmergencyStateError",
    "Transition",
    "check_text",
    "clean_text",
    "transition",
]

MAX_ACTOR = 64
MAX_NOTE = 200


class EmergencySource(enum.StrEnum):
    """Who or what changed the emergency state."""

    ALARM = "alarm"  # the fire-alarm input
    LOCAL = "local"  # `suishen gateway emergency on|off` via the local HTTP
    HUB = "hub"  # a signed emergency bundle from the hub


class EmergencyCommand(enum.StrEnum):
    DECLARE = "declare"
    END = "end"


class EmergencyStateError(ValueError):
    """A persisted emergency state (or a command's fields) that does not parse; ``field``
    names the offending key."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class EmergencyState:
    """The site's emergency state; ``since``/``source``/``actor``/``note`` describe the last
    transition (the declaration while active, the end once ended)."""

    active: bool = False
    since: float | None = None  # POSIX seconds of the last transition
    source: EmergencySource | None = None
    actor: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "since": self.since,
            "source": None if self.source is None else self.source.value,
            "actor": self.actor,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: object) -> EmergencyState:
        """The state persisted by ``as_dict``; EmergencyStateError naming the key when not."""
        if not isinstance(data, dict):
            raise EmergencyStateError("state", "not an object")
        active = data.get("active")
        if not isinstance(active, bool):
            raise EmergencyStateError("active", "must be true or false")
        since = data.get("since")
        if since is not None and (
            isinstance(since, bool)
            or not isinstance(since, int | float)
            or not math.isfinite(since)
        ):
            raise EmergencyStateError("since", "must be a number or null")
        raw_source = data.get("source")
        try:
            source = None if raw_source is None else EmergencySource(raw_source)
        except ValueError:
            raise EmergencyStateError("source", f"unknown source {raw_source!r}") from None
        return cls(
            active=active,
            since=None if since is None else float(since),
            source=source,
            actor=check_text("actor", data.get("actor", ""), MAX_ACTOR),
            note=check_text("note", data.get("note", ""), MAX_NOTE),
        )


def check_text(field: str, value: object, limit: int) -> str:
    """A short single-line text field (actor, note); EmergencyStateError when not."""
    if not isinstance(value, str):
        raise EmergencyStateError(field, "must be a string")
    if len(value) > limit:
        raise EmergencyStateError(field, f"longer than {limit} characters")
    if any(ch in value for ch in "\r\n\x00"):
        raise EmergencyStateError(field, "must be one line")
    return value


def clean_text(value: str, limit: int) -> str:
    """A text made fit to store: control characters as spaces, cut to ``limit`` characters
    (a declaration is never refused for its note)."""
    return "".join(" " if ord(ch) < 32 or ch == "\x7f" else ch for ch in value)[:limit]


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    state: EmergencyState
    changed: bool


def transition(
    state: EmergencyState,
    command: EmergencyCommand,
    *,
    source: EmergencySource,
    actor: str,
    note: str,
    now: float,
) -> Transition:
    """The table in the module docstring."""
    if command is EmergencyCommand.DECLARE:
        if state.active:
            return Transition(state=state, changed=False)
        new = EmergencyState(active=True, since=now, source=source, actor=actor, note=note)
        return Transition(state=new, changed=True)
    if not state.active or source is EmergencySource.ALARM:
        return Transition(state=state, changed=False)
    new = EmergencyState(active=False, since=now, source=source, actor=actor, note=note)
    return Transition(state=new, changed=True)


class AlarmDebounce:
    """A raw input level in, stable edges out: ``feed(level, now)`` returns the new stable
    level when the input has held it for ``debounce_s`` (else None). The first reading sets the
    baseline after the same hold (an input already set at start is a rising edge)."""

    def __init__(self, *, debounce_s: float) -> None:
        if not debounce_s >= 0:
            raise ValueError("debounce_s must be >= 0")
        self.debounce_s = debounce_s
        self.stable: bool | None = None  # None until the first level held long enough
        self._candidate: bool | None = None
        self._since = 0.0

    def feed(self, level: bool, now: float) -> bool | None:
        if level == self.stable:
            self._candidate = None
            return None
        if level != self._candidate:
            self._candidate, self._since = level, now
        if now - self._since < self.debounce_s:
            return None
        previous, self.stable, self._candidate = self.stable, level, None
        if previous is None and not level:
            return None  # a clear input at start is no edge
        return level
