"""The JSON log renderer (issue 12: the per-scan line made cheap): the same JSON as
structlog's JSONRenderer(ensure_ascii=False) for what log lines carry, and never an exception
for a value JSON cannot hold."""

from __future__ import annotations

import json
from pathlib import Path

import structlog
from hypothesis import given
from hypothesis import strategies as st

from suishen.logs import render_json

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
