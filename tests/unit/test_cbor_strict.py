"""The strict decoder's in-place map decoding (the claims map's common shapes) gives exactly
what the general path gives, and refuses the same malformed bytes with CBORInvalid."""

from __future__ import annotations

import cbor2
import pytest

from suishen.protocol import cbor


def test_claims_shapes_decode_in_place_like_cbor2() -> None:
    """Small and negative integers, short text and bytes, nested maps, long values."""
    claims = {
        1: "CN-SH",
        4: 1_790_000_120,
        6: 1_790_000_000,
        7: bytes(range(16)),
        -24: -1,
        -261: {"v": 1, "idt": "RIC", "nm": "张三明", "dob": "1949-12-31", "st": "G"},
        "long": "x" * 40,
        b"k": [1, 2, 3],
    }
    assert cbor.loads(cbor2.dumps(claims)) == claims


@pytest.mark.parametrize(
    "data",
    [
        bytes([0xA1, 0x01, 0x63, 0x61]),  # {1: text of 3 bytes} with 1 byte left
        bytes([0xA1, 0x62, 0xFF, 0xFE, 0x01]),  # a text key that is not UTF-8
        bytes([0xA1, 0x01, 0x62, 0xC3, 0x28]),  # a text value that is not UTF-8
        bytes([0xA2, 0x01, 0x02]),  # a map of two entries with one present
        bytes([0xA1, 0x44, 0x01]),  # a byte-string key cut short
        bytes([0xA1, 0xF5, 0x01]),  # a key that is true (would equal 1)
    ],
)
def test_malformed_maps_are_cbor_invalid(data: bytes) -> None:
    """Each malformed map raises CBORInvalid (never IndexError or UnicodeDecodeError)."""
    with pytest.raises(cbor.CBORInvalid):
        cbor.loads(data)
