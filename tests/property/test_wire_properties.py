"""Property tests for sync.wire's hub side: total on any JSON-like document and any body bytes.

parse_batch is the only thing between a gateway's upload and the database, and an exception
other than BatchError is answered 500, which the gateway's uploader retries forever.  So: any
JSON-like value (deep nesting, huge integers, lists where text belongs, NaN, lone surrogates)
is either a ParsedBatch or a BatchError with a 4xx status; a bad row is rejected with a short
reason, never raised.  decode_body turns any bytes into a JSON value or a BatchError 400, never
a RecursionError, and nesting_within measures depth exactly.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suishen.sync.wire import (
    MAX_DEPTH,
    SEQ_MAX,
    BatchError,
    ParsedBatch,
    decode_body,
    nesting_within,
    parse_batch,
)

GW = "gw-1"
NOW = time.time()
# Built by map: hypothesis describes a sampled_from by repr, and a 5000-digit int has none.
HUGE = st.builds(
    lambda base, power, sign: sign * base**power + (sign < 0),
    st.sampled_from([2, 10]),
    st.sampled_from([63, 64, 400, 5000]),
    st.sampled_from([1, -1]),
)
NUMBERS = st.one_of(
    st.integers(), HUGE, st.floats(), st.sampled_from([NOW, float("nan"), float("inf")])
)
TEXTS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\ud800", "a\x00b", "scan", "alert", "in", "SSC1", "allow", "x" * 5000]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS)


def deep(depth: int, *, as_dict: bool) -> Any:
    """A value nested ``depth`` deep, built without recursion."""
    value: Any = 0
    for _ in range(depth):
        value = {"k": value} if as_dict else [value]
    return value


DEEP = st.builds(deep, st.sampled_from([10, 100, 3000, 20000]), as_dict=st.booleans())
VALUES = st.recursive(
    st.one_of(SCALARS, DEEP),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXTS, inner, max_size=4)),
    max_leaves=12,
)
DEEP_TEXT = st.builds(
    lambda n, array: "[" * n + "0" + "]" * n if array else '{"a":' * n + "0" + "}" * n,
    st.sampled_from([5, 50, 5000, 100000]),
    st.booleans(),
)


def good_row(seq: int, kind: str) -> dict[str, Any]:
    row: dict[str, Any] = {"seq": seq, "ts": NOW + seq, "kind": kind, "site_id": "site-a"}
    row["lane_id"] = "lane-1"
    if kind == "scan":
        row.update(direction="in", format="SSC1", verdict="allow")
    elif kind == "passage":
        row.update(scan_seq=1, outcome="passed")
    elif kind == "alert":
        row["detail"] = json.dumps({"kind": "watchlist", "route": "police", "detail": "x"})
    else:
        row["detail"] = json.dumps({"device": "gate", "state": "down"})
    return row


FIELDS = st.sampled_from(
    ["seq", "ts", "kind", "site_id", "lane_id", "direction", "format", "verdict", "reason",
     "person_key", "minor", "latency_us", "scan_seq", "detail", "identity_sealed", "epoch_id",
     "masked_name", "zone", "nationality", "status", "bogus"]
)  # fmt: skip


@st.composite
def spoiled_rows(draw: st.DrawFn, seq: int) -> dict[str, Any]:
    """A valid row of some kind with a few fields replaced by arbitrary JSON-like values
    (a 'detail' may become deeply nested JSON text)."""
    row = good_row(seq, draw(st.sampled_from(["scan", "passage", "alert", "device"])))
    for name in draw(st.lists(FIELDS, max_size=3)):
        row[name] = draw(st.one_of(VALUES, DEEP_TEXT))
    return row


@st.composite
def documents(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["any", "batch"]))
    if shape == "any":
        return draw(VALUES)
    rows = [draw(st.one_of(spoiled_rows(seq), VALUES)) for seq in range(1, draw(st.integers(0, 5)))]
    document: dict[str, Any] = {"gateway_id": GW, "rows": rows}
    if draw(st.booleans()):
        document["epochs"] = draw(st.one_of(VALUES, st.dictionaries(TEXTS, VALUES, max_size=2)))
    if draw(st.booleans()):
        document[draw(st.sampled_from(["gateway_id", "rows", "extra"]))] = draw(VALUES)
    return document


def _is_storable(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_parse_batch_is_total(document: Any) -> None:
    """Any JSON-like document is a ParsedBatch or a BatchError with a 4xx status, nothing else;
    every stored seq fits a bigint, every stored text is storable, every reason is short."""
    try:
        batch = parse_batch(document, bound_gateway_id=GW)
    except BatchError as exc:
        refused: BatchError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.status in (400, 403, 413)
        assert len(str(refused)) < 400
        return
    assert isinstance(batch, ParsedBatch)
    assert 0 <= batch.max_seq <= SEQ_MAX
    for table in (batch.scans, batch.passages, batch.alerts, batch.devices):
        for row in table:
            assert 0 < row[1] <= SEQ_MAX
            assert all(_is_storable(value) for value in row)
    for seq, reason in batch.rejected:
        assert 0 < seq <= SEQ_MAX
        assert isinstance(reason, str)
        assert len(reason) <= 200


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), DEEP_TEXT.map(str.encode)))
def test_decode_body_is_total(data: bytes) -> None:
    """Any bytes (including JSON nested 100,000 deep) decode to a value or raise BatchError 400,
    never RecursionError."""
    status = 200
    try:
        decode_body(data)
    except BatchError as exc:
        status = exc.status
    assert status in (200, 400)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


SHALLOW = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(alphabet='[]{}"\\ab,:', max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(SHALLOW, st.integers(0, MAX_DEPTH + 2))
def test_nesting_within_measures_depth_exactly(value: Any, limit: int) -> None:
    """For any JSON text (strings full of brackets, quotes and backslashes included),
    nesting_within(text, n) holds exactly when the value is nested at most n deep."""
    text = json.dumps(value)
    assert nesting_within(text, limit) == (_depth(value) <= limit)
