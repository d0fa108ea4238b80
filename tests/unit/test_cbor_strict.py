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


def test_every_in_place_value_shape_decodes_like_cbor2() -> None:
    """Integers of 1, 2, 4 and 8 argument bytes (both signs), 2-byte negative keys, strings
    with a one-byte length, and small nested maps decode in place to what cbor2 wrote."""
    value = {
        1: 24,
        2: 300,
        3: 70_000,
        4: 2**40,
        5: -25,
        6: -300,
        7: -70_000,
        8: -(2**40),
        -261: {"t": "x" * 30, "b": b"y" * 200, "m": {"n": {}}},
        -1000: "z" * 255,
    }
    assert cbor.loads(cbor2.dumps(value)) == value


@pytest.mark.parametrize(
    "data",
    [
        bytes([0xA1, 0x01, 0x1A, 0x00, 0x01]),  # a 4-byte integer with 2 bytes left
        bytes([0xA1, 0x01, 0x3B, 0x00]),  # an 8-byte negative integer cut short
        bytes([0xA1, 0x39, 0x01]),  # a 2-byte negative key cut short
        bytes([0xA1, 0x01, 0x78, 0x05, 0x61]),  # text with a one-byte length, cut short
        bytes([0xA1, 0x01, 0x58]),  # bytes whose length byte is missing
        bytes([0xA1, 0x01, 0xA2, 0x01, 0x02]),  # a nested map of two entries with one present
        bytes([0xA1, 0x01, 0x78, 0x02, 0xC3, 0x28]),  # text with a one-byte length, not UTF-8
    ],
)
def test_malformed_in_place_values_are_cbor_invalid(data: bytes) -> None:
    """The value shapes decoded in place refuse short or invalid input with CBORInvalid."""
    with pytest.raises(cbor.CBORInvalid):
        cbor.loads(data)


def test_nested_maps_decoded_in_place_keep_the_depth_limit() -> None:
    """Maps nested in map values (decoded in place) stop at MAX_DEPTH like any other nesting."""
    deep: dict[int, object] = {}
    for _ in range(cbor.MAX_DEPTH - 1):
        deep = {1: deep}
    assert cbor.loads(cbor2.dumps(deep)) == deep
    with pytest.raises(cbor.CBORInvalid, match="deeper"):
        cbor.loads(cbor2.dumps({1: deep}))
