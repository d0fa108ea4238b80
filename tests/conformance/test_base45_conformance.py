"""RFC 9285 examples and a base45 library's tests: valid pairs round-trip, invalid texts fail."""

from __future__ import annotations

import pytest

from suishen.protocol import base45
from suishen.protocol.errors import DecodeError
from suishen.protocol.reasons import Reason
from tests.conformance.data import read_json

DATA = read_json("base45_vectors.json")


@pytest.mark.parametrize("pair", DATA["valid"], ids=lambda p: p["text"])
def test_valid_pair_round_trips(pair):
    """Decoding the text gives the bytes, and encoding the bytes gives the text."""
    raw = bytes.fromhex(pair["hex"])
    assert base45.decode(pair["text"]) == raw
    assert base45.encode(raw) == pair["text"]


@pytest.mark.parametrize("case", DATA["invalid"], ids=lambda c: repr(c["text"]))
def test_invalid_text_is_rejected(case):
    """An invalid text raises DecodeError with the malformed_base45 reason."""
    with pytest.raises(DecodeError) as info:
        base45.decode(case["text"])
    assert info.value.reason is Reason.MALFORMED_BASE45
