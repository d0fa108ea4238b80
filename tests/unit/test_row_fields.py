"""One definition of a record's fields: the gateway journal's ``events`` columns, its JournalRow
and the hub's per-kind columns all follow sync.wire.ROW_TYPES, so the journal cannot store a
field the wire does not carry (or the other way round) without these tests failing."""

from __future__ import annotations

import itertools
import json
import sqlite3
import types
import typing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.gateway.journal import Journal, JournalConfig, JournalRow
from suishen.gateway.journal.rows import scan_row
from suishen.gateway.records import Decision, Direction, Person, ScanDecided, ScanFormat, Verdict
from suishen.protocol.reasons import Reason
from suishen.protocol.vocabulary import AlertKind
from suishen.sync import wire

# SQLite's declared type for each Python type a wire field carries.
AFFINITY = {int: "INTEGER", bool: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


async def test_the_journal_table_has_exactly_the_wire_fields(tmp_path: Path) -> None:
    """A journal file made by a real Journal has one column per wire field, in wire order, of a
    type that holds the field's value, and no other column (nothing synced the wire lacks)."""
    path = tmp_path / "journal.sqlite3"
    hub = X25519PrivateKey.generate().public_key()
    async with Journal(JournalConfig(path=path), gateway_id="gw", site_id="s", hub_public_key=hub):
        pass
    db = sqlite3.connect(path)
    try:
        columns = [(name, kind) for _, name, kind, *_ in db.execute("PRAGMA table_info(events)")]
    finally:
        db.close()
    assert [name for name, _ in columns] == list(wire.ROW_FIELDS)
    for name, declared in columns:
        assert declared == AFFINITY[wire.ROW_TYPES[name]], name


def test_a_journal_row_carries_the_wire_fields_with_their_types() -> None:
    """JournalRow is the wire row plus the epoch's public key (sent once per batch in 'epochs'),
    each field of the wire's type or None."""
    hints = typing.get_type_hints(JournalRow)
    assert tuple(hints) == (*wire.ROW_FIELDS, "epoch_public")
    for name, kind in wire.ROW_TYPES.items():
        allowed = (
            set(typing.get_args(hints[name]))
            if isinstance(hints[name], types.UnionType)
            else {hints[name]}
        )
        assert kind in allowed, f"JournalRow.{name}: {hints[name]} lacks {kind.__name__}"
    assert set(wire.encode_row(dict.fromkeys(hints))) == set(wire.ROW_FIELDS)


def test_the_hub_columns_of_each_kind_are_wire_fields() -> None:
    """A scan's and a passage's hub columns are wire fields between gateway_id and journal_id;
    an alert's and a device event's too, but for what they take from the row's detail JSON."""
    for columns, from_detail in (
        (wire.SCAN_COLUMNS, set()),
        (wire.PASSAGE_COLUMNS, set()),
        (wire.ALERT_COLUMNS, {"kind", "route", "level", "detail"}),
        (wire.DEVICE_COLUMNS, {"detail"}),
    ):
        assert columns[0] == "gateway_id" and columns[-1] == "journal_id"
        assert set(columns[1:-1]) - from_detail <= set(wire.ROW_FIELDS), columns
        assert columns[1:4] == ("seq", "ts", "site_id")


def test_the_wire_takes_exactly_the_alert_kinds_of_the_vocabulary() -> None:
    """An alert row's kind is one of AlertKind: 'clock' is taken, 'device' (never raised, so
    no longer a kind) is rejected with its reason and the rest of the batch goes on."""
    assert frozenset(wire.ALERT_KINDS) == {kind.value for kind in AlertKind}
    rows = [
        {
            "seq": seq,
            "ts": 1_795_480_207.0,
            "kind": "alert",
            "site_id": "site-1",
            "detail": json.dumps({"kind": kind, "route": "staff", "detail": "x"}),
        }
        for seq, kind in ((1, "clock"), (2, "device"))
    ]
    batch = wire.parse_batch({"gateway_id": "gw", "rows": rows}, bound_gateway_id="gw")
    assert [alert[6] for alert in batch.alerts] == ["clock"]
    assert [(seq, reason.split(" must")[0]) for seq, reason in batch.rejected] == [(2, "'kind'")]


def test_a_scan_row_has_every_column_and_nothing_else() -> None:
    """scan_row writes its columns out by hand (on every scan's path): every wire field, plus
    the frame's arrival that _prepare_item pops, and the values of a scan with a person."""
    record = ScanDecided(
        ts=1.5,
        site_id="s",
        lane_id="in-1",
        direction=Direction.IN,
        format=ScanFormat.SSC1,
        decision=Decision(verdict=Verdict.ALLOW, reason=None, stay_id="stay-1"),
        person=Person(
            person_key="ab" * 32,
            nationality="CHN",
            minor=False,
            status="G",
            masked_name="张*明",
            masked_number="310***0001",
        ),
        cti="00",
        kid="a2lk",
        received_mono=7.0,
    )
    row = scan_row(record)
    assert list(row) == [*wire.ROW_FIELDS, "received_mono"]
    assert row["minor"] == 0
    assert row["verdict"] == "allow"
    assert json.loads(row["detail"]) == {"stay_id": "stay-1"}
    assert row["received_mono"] == 7.0


@pytest.mark.parametrize(
    ("direction", "fmt", "reason"),
    list(
        zip(
            itertools.cycle(Direction),
            itertools.cycle(ScanFormat),
            Reason,
            strict=False,
        )
    ),
)
def test_a_scan_rows_vocabulary_is_plain_text(direction, fmt, reason) -> None:
    """scan_row looks each member's text up in a table (not .value): every direction, format,
    verdict and reason becomes its plain str value, as the journal and the wire expect."""
    for verdict, why in ((Verdict.DENY, reason), (Verdict.ALLOW, None)):
        record = ScanDecided(
            ts=1.5,
            site_id="s",
            lane_id="l",
            direction=direction,
            format=fmt,
            decision=Decision(verdict=verdict, reason=why),
            person=None,
        )
        row = scan_row(record)
        picked = (row["direction"], row["format"], row["verdict"], row["reason"])
        want = (direction.value, fmt.value, verdict.value, None if why is None else why.value)
        assert picked == want
        assert all(value is None or type(value) is str for value in picked)
