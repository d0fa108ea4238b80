"""Wiegand 26 / 34 bit formats: decode a card read to a card number, and encode one (sans-I/O).

An OSDP reader reports a Wiegand read as raw bits (``osdp_RAW`` format 1): a bit count and the
bits packed MSB first, left-justified, in ``ceil(bits / 8)`` bytes; the pad bits at the end of
the last byte are ignored.

Formats (bit 0 is the first bit on the wire)::

    Wiegand 26 (H10301): E FFFFFFFF NNNNNNNNNNNNNNNN O
        E  even parity over bits 1..12        F  facility code, 8 bits (0..255)
        O  odd parity over bits 13..24        N  card number, 16 bits (0..65535)

    Wiegand 34:          E FFFFFFFFFFFFFFFF NNNNNNNNNNNNNNNN O
        E  even parity over bits 1..16        F  facility code, 16 bits
        O  odd parity over bits 17..32        N  card number, 16 bits

The card number a site enrols is the whole data field read as one unsigned integer, in decimal:
``facility * 65536 + number`` (24 bits for W26, 32 bits for W34 -- for W34 this is the 10-digit
number printed on most Mifare cards). That is ``WiegandCard.card_number``.

Parity: both parity bits must hold; a read with a wrong parity bit is a misread (the person
presents the card again) and comes back as ``WiegandRejection(reason=PARITY)``, never as a card.
Any other bit count comes back as ``UNSUPPORTED_LENGTH`` so the caller can treat the bits as
opaque raw card data. Expected outcomes are values; only a broken call (negative numbers,
more bits than bytes) raises ValueError.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "WiegandCard",
    "WiegandFormat",
    "WiegandReject",
    "WiegandRejection",
    "bits_of",
    "decode",
    "encode",
]


class WiegandFormat(enum.StrEnum):
    W26 = "wiegand26"
    W34 = "wiegand34"


# format -> (total bits, facility bits, number bits)
_LAYOUT: dict[WiegandFormat, tuple[int, int, int]] = {
    WiegandFormat.W26: (26, 8, 16),
    WiegandFormat.W34: (34, 16, 16),
}
_BY_LENGTH = {total: fmt for fmt, (total, _, _) in _LAYOUT.items()}


class WiegandReject(enum.StrEnum):
    UNSUPPORTED_LENGTH = "unsupported_length"  # not 26 or 34 bits: opaque raw data
    PARITY = "parity"  # a parity bit does not hold: a misread


@dataclass(frozen=True, slots=True, kw_only=True)
class WiegandCard:
    """A decoded Wiegand read with both parity bits verified."""

    format: WiegandFormat
    facility: int
    number: int

    def __post_init__(self) -> None:
        _, facility_bits, number_bits = _LAYOUT[self.format]
        if not 0 <= self.facility < (1 << facility_bits):
            raise ValueError(f"facility {self.facility} does not fit {facility_bits} bits")
        if not 0 <= self.number < (1 << number_bits):
            raise ValueError(f"card number {self.number} does not fit {number_bits} bits")

    @property
    def card_number(self) -> int:
        """The whole data field as one integer: facility * 65536 + number."""
        return (self.facility << _LAYOUT[self.format][2]) | self.number

    @classmethod
    def from_card_number(cls, fmt: WiegandFormat, card_number: int) -> WiegandCard:
        _, facility_bits, number_bits = _LAYOUT[fmt]
        if not 0 <= card_number < (1 << (facility_bits + number_bits)):
            raise ValueError(f"card number {card_number} does not fit {fmt.value}")
        return cls(
            format=fmt,
            facility=card_number >> number_bits,
            number=card_number & ((1 << number_bits) - 1),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WiegandRejection:
    """Why a Wiegand read did not decode to a card."""

    reason: WiegandReject
    bit_length: int


def bits_of(data: bytes, bit_length: int) -> tuple[int, ...]:
    """The first ``bit_length`` bits of ``data``, MSB first (OSDP raw card data packing)."""
    if bit_length < 0 or bit_length > len(data) * 8:
        raise ValueError(f"{bit_length} bits do not fit {len(data)} bytes")
    return tuple((data[i // 8] >> (7 - i % 8)) & 1 for i in range(bit_length))


def _pack(bits: tuple[int, ...]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)


def _value(bits: tuple[int, ...]) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | bit
    return value


def decode(data: bytes, bit_length: int) -> WiegandCard | WiegandRejection:
    """Decode a raw Wiegand read (as OSDP delivers it) to a card, or say why not."""
    bits = bits_of(data, bit_length)
    fmt = _BY_LENGTH.get(bit_length)
    if fmt is None:
        return WiegandRejection(reason=WiegandReject.UNSUPPORTED_LENGTH, bit_length=bit_length)
    total, facility_bits, _ = _LAYOUT[fmt]
    half = (total - 2) // 2
    first, second = bits[1 : 1 + half], bits[1 + half : total - 1]
    even_ok = (bits[0] + sum(first)) % 2 == 0
    odd_ok = (bits[-1] + sum(second)) % 2 == 1
    if not (even_ok and odd_ok):
        return WiegandRejection(reason=WiegandReject.PARITY, bit_length=bit_length)
    data_bits = bits[1 : total - 1]
    return WiegandCard(
        format=fmt,
        facility=_value(data_bits[:facility_bits]),
        number=_value(data_bits[facility_bits:]),
    )


def encode(card: WiegandCard) -> tuple[bytes, int]:
    """The raw read a reader sends for ``card``: (packed bytes, bit length), parity set."""
    total, facility_bits, number_bits = _LAYOUT[card.format]
    data_bits = tuple(
        (card.card_number >> (facility_bits + number_bits - 1 - i)) & 1
        for i in range(facility_bits + number_bits)
    )
    half = len(data_bits) // 2
    even = sum(data_bits[:half]) % 2  # makes the first half plus E even
    odd = 1 - sum(data_bits[half:]) % 2  # makes the second half plus O odd
    bits = (even, *data_bits, odd)
    assert len(bits) == total
    return _pack(bits), total
