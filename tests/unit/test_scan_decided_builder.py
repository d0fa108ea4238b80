"""records.scan_decided: the pipeline's slot-set ScanDecided equals the dataclass's own."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.gateway.records import (
    Decision,
    Direction,
    Person,
    ScanDecided,
    ScanFormat,
    Verdict,
    scan_decided,
)
from suishen.protocol.reasons import Reason

_TEXT = st.text(max_size=8)
_DECISIONS = st.one_of(
    st.builds(Decision, verdict=st.just(Verdict.ALLOW), reason=st.none() | st.sampled_from(Reason)),
    st.builds(Decision, verdict=st.just(Verdict.DENY), reason=st.sampled_from(Reason)),
)
_PEOPLE = st.none() | st.builds(
    Person,
    person_key=st.just("ab" * 32),
    nationality=st.none() | _TEXT,
    minor=st.none() | st.booleans(),
    status=st.none() | st.sampled_from("GYR"),
    masked_name=_TEXT,
    masked_number=_TEXT,
)


_ARGS = st.fixed_dictionaries(
    {
        "ts": st.floats(allow_nan=False),
        "site_id": _TEXT,
        "lane_id": _TEXT,
        "direction": st.sampled_from(Direction),
        "format": st.sampled_from(ScanFormat),
        "decision": _DECISIONS,
        "person": _PEOPLE,
        "cti": st.none() | _TEXT,
        "kid": st.none() | _TEXT,
        "zone": _TEXT,
        "identity_clear": st.none() | st.dictionaries(_TEXT, _TEXT, max_size=3),
        "received_mono": st.none() | st.floats(allow_nan=False),
    }
)


@given(_ARGS)
def test_scan_decided_equals_the_dataclass_constructor(args: dict) -> None:
    """Every field of scan_decided(...) (the uncompared ones too: received_mono, detail,
    identity_clear) is what ScanDecided(...) with the same arguments holds, and the record is
    as frozen: the slots are set once, the dataclass's __setattr__ still refuses a change."""
    built, want = scan_decided(**args), ScanDecided(**args)
    assert type(built) is ScanDecided
    for f in dataclasses.fields(ScanDecided):
        assert getattr(built, f.name) == getattr(want, f.name), f.name
    assert built == want
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.ts = 0.0  # type: ignore[misc]
