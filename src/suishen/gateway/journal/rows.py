"""Journal rows: the columns of ``events``, how a record becomes a row to insert, and how a
row read back becomes a JournalRow (for the uploader) or a record again (for replay)."""

from __future__ import annotations

import json
import operator
from dataclasses import asdict, dataclass
from typing import Any

from suishen.gateway.journal.config import JournalError
from suishen.gateway.records import (
    AlertRaised,
    Decision,
    Direction,
    PassageOutcomeKind,
    PassageRecorded,
    Person,
    ScanDecided,
    ScanFormat,
    Verdict,
)
from suishen.protocol.reasons import Reason
from suishen.protocol.vocabulary import RecordKind
from suishen.sync.wire import ROW_FIELDS, ROW_TYPES

# The events table's columns are the wire row's fields (sync.wire.ROW_TYPES, the one definition
# of a record's fields), in the same order; the SQL type follows the field's Python type.
COLUMNS = ROW_FIELDS
SQL_TYPES: dict[type, str] = {
    int: "INTEGER",
    bool: "INTEGER",
    float: "REAL",
    str: "TEXT",
    bytes: "BLOB",
}
_CONSTRAINTS = {
    "seq": "PRIMARY KEY AUTOINCREMENT",
    "ts": "NOT NULL",
    "kind": f"NOT NULL CHECK (kind IN ({', '.join(repr(k.value) for k in RecordKind)}))",
    "site_id": "NOT NULL",
}
EVENTS_DDL = "CREATE TABLE IF NOT EXISTS events (\n{}\n)".format(
    ",\n".join(
        " ".join(filter(None, (f"    {name}", SQL_TYPES[kind], _CONSTRAINTS.get(name))))
        for name, kind in ROW_TYPES.items()
    )
)
INSERT = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join(':' + c for c in COLUMNS)})"
)
# The batch insert takes each row's values by position (sqlite3 binds a sequence faster than it
# looks 25 names up in a dict); values_of picks them from a row dict in one C call.
values_of = operator.itemgetter(*COLUMNS)
# A group commit inserts its rows with one multi-row INSERT per INSERT_CHUNK rows rather than
# executemany: sqlite3 releases the GIL around every statement step, and under load each
# re-acquisition waits for the event loop to yield, so a batch of n rows stretched its commit by
# up to n waits (the tail of scan -> open latency).  INSERT_CHUNK x the columns stays below
# SQLite's oldest bound-parameter limit (999).
INSERT_CHUNK = 999 // len(COLUMNS)
_ROW_PLACEHOLDERS = f"({', '.join('?' for _ in COLUMNS)})"
_INSERT_MANY: dict[int, str] = {}


def insert_rows_sql(n: int) -> str:
    """The INSERT of ``n`` rows (1 <= n <= INSERT_CHUNK) in one statement, made once per n."""
    sql = _INSERT_MANY.get(n)
    if sql is None:
        if not 1 <= n <= INSERT_CHUNK:
            raise ValueError(f"1..{INSERT_CHUNK} rows per INSERT")
        sql = _INSERT_MANY[n] = (
            f"INSERT INTO events ({', '.join(COLUMNS)}) "  # noqa: S608 - fixed column names
            f"VALUES {', '.join(_ROW_PLACEHOLDERS for _ in range(n))}"
        )
    return sql


SELECT = ", ".join(f"e.{c}" for c in COLUMNS)
# Each member's text by a dict lookup: an enum member's .value is a Python-level property
# (about 0.2 us each, four per scan row), a dict hit on the str-valued member is not.
_TEXT: dict[object, str] = {
    member: member.value for kind in (Direction, ScanFormat, Verdict, Reason) for member in kind
}


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalRow:
    """One journal row as the uploader reads it (no clear identity, ever)."""

    seq: int
    ts: float
    kind: str  # scan | passage | alert | device
    site_id: str
    lane_id: str | None
    direction: str | None
    format: str | None
    verdict: str | None
    reason: str | None
    person_key: str | None
    nationality: str | None
    minor: bool | None
    status: str | None
    masked_name: str | None
    masked_number: str | None
    cti: str | None
    kid: str | None
    zone: str | None
    latency_us: int | None
    scan_seq: int | None
    outcome: str | None
    detail: str | None  # JSON text (alerts: kind, route, detail, level; device events)
    identity_sealed: bytes | None
    epoch_id: str | None  # 16 hex characters
    epoch_public: bytes | None  # the epoch's raw X25519 ephemeral public key (32 bytes)

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (bytes stay bytes)."""
        return asdict(self)


def row_of(values: tuple[Any, ...]) -> JournalRow:
    data = dict(zip((*COLUMNS, "epoch_public"), values, strict=True))
    if data["minor"] is not None:
        data["minor"] = bool(data["minor"])
    return JournalRow(**data)


def blank(**values: Any) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS)
    row.update(values)
    return row


def _scan_detail(r: ScanDecided) -> str | None:
    detail: dict[str, object] = dict(r.detail) if r.detail else {}
    if r.decision.stay_id:
        detail["stay_id"] = r.decision.stay_id
    return json.dumps(detail, sort_keys=True) if detail else None


def alert_row(
    alert: AlertRaised, *, ts: float, site_id: str, lane_id: str | None
) -> dict[str, Any]:
    detail = {
        "kind": alert.kind.value,
        "route": alert.route.value,
        "detail": alert.detail,
        "level": alert.level.value if alert.level is not None else None,
    }
    return blank(
        ts=ts,
        kind="alert",
        site_id=site_id,
        lane_id=lane_id,
        person_key=alert.person_key,
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
    )


def scan_row(r: ScanDecided) -> dict[str, Any]:
    """A scan's row: every column, written out (a dict display, on every scan's path, instead
    of blank(**values)); a test holds its keys to COLUMNS."""
    p = r.person
    decision = r.decision
    reason = decision.reason
    text = _TEXT
    return {
        "seq": None,
        "ts": r.ts,
        "kind": "scan",
        "site_id": r.site_id,
        "lane_id": r.lane_id,
        "direction": text[r.direction],
        "format": text[r.format],
        "verdict": text[decision.verdict],
        "reason": text[reason] if reason is not None else None,
        "person_key": p.person_key if p else None,
        "nationality": p.nationality if p else None,
        "minor": None if p is None or p.minor is None else int(p.minor),
        "status": p.status if p else None,
        "masked_name": p.masked_name if p else None,
        "masked_number": p.masked_number if p else None,
        "cti": r.cti,
        "kid": r.kid,
        "zone": r.zone,
        "latency_us": r.latency_us,
        "scan_seq": None,
        "outcome": None,
        # The hotel stay a check-in joined, so a restart rebuilds the same party; and the
        # lane's own facts (a folded burst of discards).
        "detail": _scan_detail(r) if r.detail or decision.stay_id else None,
        "identity_sealed": None,
        "epoch_id": None,
        "received_mono": r.received_mono,  # popped by _prepare_item, which stamps latency_us
    }


def passage_row(r: PassageRecorded) -> dict[str, Any]:
    return blank(
        ts=r.ts,
        kind="passage",
        site_id=r.site_id,
        lane_id=r.lane_id,
        direction=r.direction.value,
        person_key=r.person_key,
        zone=r.zone,
        scan_seq=r.scan_seq,
        outcome=r.outcome.value,
    )


def _text(value: str | None) -> str:
    if value is None:
        raise JournalError("journal row lacks a required column")
    return value


def _stay_id(detail: str | None) -> str | None:
    if not detail:
        return None
    try:
        value = json.loads(detail).get("stay_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def record_of(row: JournalRow) -> ScanDecided | PassageRecorded:
    """Rebuild a scan or passage record from its row (no identity, no alerts)."""
    if row.kind == "passage":
        return PassageRecorded(
            ts=row.ts,
            site_id=row.site_id,
            lane_id=row.lane_id or "",
            scan_seq=row.scan_seq or 0,
            outcome=PassageOutcomeKind(_text(row.outcome)),
            person_key=row.person_key,
            direction=Direction(row.direction or Direction.IN),
            zone=row.zone or "main",
        )
    person = None
    if row.person_key is not None:
        person = Person(
            person_key=row.person_key,
            nationality=row.nationality,
            minor=row.minor,
            status=row.status,
            masked_name=row.masked_name or "",
            masked_number=row.masked_number or "",
        )
    return ScanDecided(
        ts=row.ts,
        site_id=row.site_id,
        lane_id=row.lane_id or "",
        direction=Direction(_text(row.direction)),
        format=ScanFormat(_text(row.format)),
        decision=Decision(
            verdict=Verdict(_text(row.verdict)),
            reason=Reason(row.reason) if row.reason is not None else None,
            stay_id=_stay_id(row.detail),
        ),
        person=person,
        cti=row.cti,
        kid=row.kid,
        zone=row.zone or "main",
        latency_us=row.latency_us or 0,
    )
