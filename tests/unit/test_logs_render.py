"""The JSON log renderer (issue 12: the per-scan line made cheap): the same JSON as
structlog's JSONRenderer(ensure_ascii=False) for what log lines carry, and never an exception
for a value JSON cannot hold."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import structlog
from hypothesis import given
from hypothesis import strategies as st

from suishen.logs import UtcStamper, configure, render_json

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

REFERENCE = structlog.processors.JSONRenderer(ensure_ascii=False)
values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(st.characters(exclude_categories=("Cs",)))
    | st.floats(allow_nan=False, allow_infinity=False)
)


@given(
    st.dictionaries(st.text(st.characters(exclude_categories=("Cs",))), values | st.lists(values))
)
def test_same_json_as_structlog(event: dict[str, object]) -> None:
    """Any map of text keys to the values log lines carry decodes to the same object as
    structlog's JSONRenderer output, and non-ASCII text is written as is, not escaped."""
    line = render_json(None, "info", dict(event))
    assert json.loads(line) == json.loads(REFERENCE(None, "info", dict(event)))
    assert "\n" not in line


def test_values_json_cannot_hold_are_written_not_raised() -> None:
    """A path, an exception, an integer beyond 64 bits and a non-text key give a line (repr
    for objects, as structlog does), never an exception from the logger."""
    line = render_json(None, "info", {"event": "x", "path": Path("/a"), "err": ValueError("q")})
    assert json.loads(line) == {"event": "x", "path": "PosixPath('/a')", "err": "ValueError('q')"}
    assert json.loads(render_json(None, "info", {"big": 2**70})) == {"big": 2**70}
    assert json.loads(render_json(None, "info", {1: "one", "nm": "张"})) == {"1": "one", "nm": "张"}
    assert "张" in render_json(None, "info", {"nm": "张"})


@given(st.integers(0, 2**62))
def test_utc_stamper_writes_the_iso_utc_time_of_its_clock(nanos: int) -> None:
    """The per-second cached stamper writes the clock's instant as ISO 8601 UTC with six
    microsecond digits and Z, the same instant datetime gives (structlog's text, which only
    drops a zero microsecond), whichever second the cache held before."""
    clock = iter([nanos, nanos + 1_000_000_000 * 3601 + 7_000]).__next__
    stamper = UtcStamper(clock=clock)
    for now in (nanos, nanos + 1_000_000_000 * 3601 + 7_000):
        want = EPOCH + dt.timedelta(microseconds=now // 1000)
        stamp = stamper(None, "info", {})["timestamp"]
        assert stamp == want.isoformat(timespec="microseconds").replace("+00:00", "Z")
        assert dt.datetime.fromisoformat(stamp) == want


def test_configured_lines_carry_the_stamp(capsys) -> None:
    """configure() puts the stamper in the chain: a JSON line's timestamp is now, in UTC."""
    configure("info", json=True)
    try:
        before = dt.datetime.now(dt.UTC)
        structlog.get_logger("t").info("scan", seq=1)
        after = dt.datetime.now(dt.UTC)
    finally:
        configure("warning")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    stamp = dt.datetime.fromisoformat(line["timestamp"])
    assert before - dt.timedelta(microseconds=1) <= stamp <= after
    assert line["timestamp"].endswith("Z")
