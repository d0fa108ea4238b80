"""Wiegand 26/34 decoding and encoding (protocol.wiegand), with known bit patterns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.protocol import wiegand
from suishen.protocol.wiegand import WiegandCard, WiegandFormat, WiegandReject, WiegandRejection


def _bits(text: str) -> tuple[bytes, int]:
    """Pack a '0'/'1' string MSB first, left-justified, as OSDP carries raw bits."""
    text = text.replace(" ", "")
    value = int(text, 2) << (-len(text) % 8)
    return value.to_bytes((len(text) + 7) // 8, "big"), len(text)


def test_w26_known_pattern_decodes() -> None:
    """H10301 facility 1, card 1: E=1, 8 facility bits, 16 number bits, O=0."""
    data, bits = _bits("1 00000001 0000000000000001 0")
    card = wiegand.decode(data, bits)
    assert card == WiegandCard(format=WiegandFormat.W26, facility=1, number=1)
    assert isinstance(card, WiegandCard)
    assert card.card_number == 65537


def test_w26_encode_matches_known_pattern() -> None:
    """Encoding facility 1 / card 1 gives exactly the bits of the known pattern."""
    assert wiegand.encode(WiegandCard(format=WiegandFormat.W26, facility=1, number=1)) == _bits(
        "1 00000001 0000000000000001 0"
    )


def test_w34_known_pattern_decodes() -> None:
    """W34: 16 facility bits and 16 number bits between the parity bits."""
    data, bits = _bits("0 0000000000000011 0000000000000111 0")
    card = wiegand.decode(data, bits)
    assert card == WiegandCard(format=WiegandFormat.W34, facility=3, number=7)


@pytest.mark.parametrize("flip", [0, 1, 12, 13, 24, 25])
def test_w26_any_flipped_bit_is_a_parity_rejection(flip: int) -> None:
    """Flipping a parity bit or a data bit is caught by one of the two parity bits."""
    data, bits = wiegand.encode(WiegandCard.from_card_number(WiegandFormat.W26, 12345678))
    value = int.from_bytes(data, "big") ^ (1 << (len(data) * 8 - 1 - flip))
    result = wiegand.decode(value.to_bytes(len(data), "big"), bits)
    assert result == WiegandRejection(reason=WiegandReject.PARITY, bit_length=26)


@pytest.mark.parametrize("bits", [8, 25, 27, 32, 35, 37])
def test_other_lengths_are_unsupported(bits: int) -> None:
    """Only 26 and 34 bits are Wiegand formats here; anything else is opaque raw data."""
    result = wiegand.decode(bytes(8), bits)
    assert result == WiegandRejection(reason=WiegandReject.UNSUPPORTED_LENGTH, bit_length=bits)


def test_pad_bits_after_the_last_bit_are_ignored() -> None:
    """Set pad bits in the last byte do not change the decoded card."""
    data, bits = wiegand.encode(WiegandCard.from_card_number(WiegandFormat.W26, 4242))
    padded = data[:-1] + bytes([data[-1] | 0x3F])
    assert wiegand.decode(padded, bits) == wiegand.decode(data, bits)


def test_more_bits_than_bytes_is_a_broken_call() -> None:
    """Asking for more bits than the data holds raises ValueError (a contract violation)."""
    with pytest.raises(ValueError, match="do not fit"):
        wiegand.decode(b"\x00\x00", 26)


def test_card_number_out_of_range_is_refused() -> None:
    """A W26 card number needs 24 bits; 2**24 does not fit."""
    with pytest.raises(ValueError, match="does not fit"):
        WiegandCard.from_card_number(WiegandFormat.W26, 1 << 24)
    with pytest.raises(ValueError, match="does not fit"):
        WiegandCard(format=WiegandFormat.W26, facility=256, number=0)


@given(
    fmt=st.sampled_from(list(WiegandFormat)),
    number=st.integers(min_value=0, max_value=(1 << 32) - 1),
)
def test_encode_decode_round_trip(fmt: WiegandFormat, number: int) -> None:
    """Every card number that fits its format survives encode -> decode unchanged."""
    number %= 1 << (24 if fmt is WiegandFormat.W26 else 32)
    card = WiegandCard.from_card_number(fmt, number)
    data, bits = wiegand.encode(card)
    assert wiegand.decode(data, bits) == card
    assert card.card_number == number
