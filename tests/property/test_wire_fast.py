"""parse_body (the typed msgspec pass, with parse_batch behind it) answers every body exactly as
``parse_batch(decode_body(body))`` does: the same ParsedBatch (rows, rejected rows and their
reasons, sites, days, epochs, high seq) or the same BatchError (status, message, row).

Bodies are full valid batches (what gateways send, which the typed pass takes whole), the same
batches with a few fields spoiled by arbitrary JSON values, text with a trailing newline, NUL or
surrogate escapes, unknown fields or repeated seqs, and byte-level mutations of valid bodies.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from suishen.sync.wire import (
    MAX_ROWS,
    BatchError,
    ParsedBatch,
    _parse_typed,
    decode_body,
    parse_batch,
    parse_body,
)
from tests.property.test_wire_properties import GW, NOW, VALUES, good_row, spoiled_rows

SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
EPOCH = "0123456789abcdef"


def full_row(seq: int, kind: str) -> dict[str, Any]:
    """A valid row with every field its kind may carry set (a scan with a sealed identity)."""
    row = good_row(seq, kind)
    if kind == "scan":
        row.update(
            verdict="deny" if seq % 3 == 0 else "allow",
            reason="status_red" if seq % 3 == 0 else None,
            person_key=f"{seq:064x}",
            nationality="CHN",
            minor=seq % 2 == 0,
            status="G",
            masked_name="张*明",
            masked_number="310***********1234",
            cti=f"{seq:032x}",
            kid="AAECAwQFBgc=",
            zone="east",
            latency_us=1500,
            identity_sealed=base64.b64encode(b"sealed" * 10).decode(),
            epoch_id=EPOCH,
        )
    elif kind == "passage":
        row.update(person_key=f"{seq:064x}", direction="out", zone="east")
    return row


def outcome(body: bytes, parse: Any) -> ParsedBatch | tuple[int, str, int | None]:
    try:
        return parse(body)
    except BatchError as exc:
        return (exc.status, str(exc), exc.row)


def assert_alike(body: bytes) -> None:
    typed = outcome(body, lambda b: parse_body(b, bound_gateway_id=GW))
    generic = outcome(body, lambda b: parse_batch(decode_body(b), bound_gateway_id=GW))
    assert typed == generic


def dumps(document: Any) -> bytes:
    """JSON bytes as a gateway could send them (UTF-8; a lone surrogate only as an escape);
    a value json.dumps cannot write (a 5000-digit int, 20,000 levels) drops the example."""
    try:
        return json.dumps(document, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(document).encode()
    except (ValueError, RecursionError):
        assume(False)
        raise


def body_of(rows: list[Any], **extra: Any) -> dict[str, Any]:
    epochs = {EPOCH: base64.b64encode(bytes(32)).decode()}
    return {
        "gateway_id": GW,
        "journal_id": "00000000000000aa",
        "rows": rows,
        "epochs": epochs,
        **extra,
    }


KINDS = st.sampled_from(["scan", "scan", "scan", "passage", "alert", "device"])
ODD_TEXT = st.sampled_from(
    ["site-a\n", "a\x00b", "\ud800", "\udc00x", "ＣＨＮ", "😀😀😀", "x" * 65, "", " in", "G\n"]
)
FIELD_NAMES = st.sampled_from(
    ["seq", "ts", "kind", "site_id", "lane_id", "direction", "format", "verdict", "reason",
     "person_key", "nationality", "minor", "status", "masked_name", "masked_number", "cti",
     "kid", "zone", "latency_us", "scan_seq", "outcome", "detail", "identity_sealed",
     "epoch_id", "bogus"]
)  # fmt: skip


@SETTINGS
@given(kinds=st.lists(KINDS, min_size=1, max_size=8), ascii_only=st.booleans())
def test_valid_batches_parse_alike(kinds: list[str], ascii_only: bool) -> None:
    """Batches of valid rows of every kind: the typed pass takes them, with the same result."""
    rows = [full_row(seq, kind) for seq, kind in enumerate(kinds, start=1)]
    body = json.dumps(body_of(rows), ensure_ascii=ascii_only).encode()
    assert isinstance(_parse_typed(body, GW, MAX_ROWS), ParsedBatch)  # taken by the typed pass
    assert_alike(body)


@SETTINGS
@given(
    kinds=st.lists(KINDS, min_size=1, max_size=4),
    spoils=st.lists(
        st.tuples(st.integers(0, 3), FIELD_NAMES, st.one_of(VALUES, ODD_TEXT, st.just(...))),
        min_size=1,
        max_size=3,
    ),
)
def test_spoiled_fields_parse_alike(kinds, spoils) -> None:
    """A few fields of valid rows replaced by odd values (or removed: ...): the same answer."""
    rows = [full_row(seq, kind) for seq, kind in enumerate(kinds, start=1)]
    for index, name, value in spoils:
        row = rows[index % len(rows)]
        if value is ...:
            row.pop(name, None)
        else:
            row[name] = value
    assert_alike(dumps(body_of(rows)))


@SETTINGS
@given(rows=st.lists(st.integers(1, 6).flatmap(spoiled_rows), max_size=5), top=VALUES)
def test_spoiled_rows_and_batches_parse_alike(rows, top) -> None:
    """The wire property tests' spoiled rows, and an odd value at the top of the batch."""
    assert_alike(dumps(body_of(rows)))
    for name in ("gateway_id", "journal_id", "rows", "epochs"):
        document = body_of(rows)
        document[name] = top
        assert_alike(dumps(document))


@SETTINGS
@given(data=st.data(), kinds=st.lists(KINDS, min_size=1, max_size=3))
def test_mutated_bodies_parse_alike(data, kinds) -> None:
    """A valid body with bytes replaced, inserted or deleted: the same answer."""
    body = json.dumps(body_of([full_row(s, k) for s, k in enumerate(kinds, start=1)])).encode()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(body) - 1))
        b = bytes([data.draw(st.integers(0, 255))])
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        body = {
            "replace": body[:i] + b + body[i + 1 :],
            "insert": body[:i] + b + body[i:],
            "delete": body[:i] + body[i + 1 :],
        }[op]
    assert_alike(body)


@pytest.mark.parametrize(
    "spoil",
    [
        {"site_id": "site-a\n"},  # $ would match before the newline; fullmatch does not
        {"seq": 1},  # a repeated seq: 400 naming the row
        {"ts": NOW * 10},  # after 2100: rejected row
        {"nationality": "CH"},
        {"masked_name": "a\x00b"},
        {"verdict": "deny", "reason": None},
        {"identity_sealed": None},  # epoch_id without identity_sealed
        {"identity_sealed": "not base64!"},
        {"minor": 0},
        {"bogus": 1},
        {"lane_id": "lane 1"},
        {"zone": "east\n"},
        {"person_key": "A" * 64},  # upper-case hex
        {"person_key": "é" * 64},
        {"person_key": "0" * 63},
    ],
)
def test_each_rule_is_kept(spoil: dict[str, Any]) -> None:
    """One rule broken in the second row of three: the same answer as parse_batch."""
    rows = [full_row(seq, "scan") for seq in (1, 2, 3)]
    rows[1].update(spoil)
    assert_alike(dumps(body_of(rows)))
