"""Base45 (RFC 9285), the QR-alphanumeric-friendly encoding of the DCC and SSC1 envelopes.

decode() is on every scan's hot path, so it has no Python-level loop per character triple: all
triples are combined at once in one big integer with 24-bit slots (see the comment inside); a
slot above 0xFFFF (RFC 9285 §4.2: invalid) shows up as its bit 16 set.
"""

from __future__ import annotations

from suishen.protocol.errors import DecodeError
from suishen.protocol.reasons import Reason

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = 0xFF
_DIGIT_OF = bytes(
    ALPHABET.encode("ascii").index(i) if i in ALPHABET.encode("ascii") else _INVALID
    for i in range(256)
)


def encode(data: bytes) -> str:
    """Encode bytes as base45 text."""
    out: list[str] = []
    a = ALPHABET
    for i in range(0, len(data) - 1, 2):
        n = (data[i] << 8) | data[i + 1]
        c, d = divmod(n, 45)
        e, c2 = divmod(c, 45)
        out.append(a[d] + a[c2] + a[e])
    if len(data) % 2:
        c, d = divmod(data[-1], 45)
        out.append(a[d] + a[c])
    return "".join(out)


_MASKS: dict[int, tuple[int, int]] = {}


def _masks(triples: int) -> tuple[int, int]:
    """For `triples` 24-bit slots (cached per length): 0xFF in each slot's low byte, and each
    slot's bit 16."""
    masks = _MASKS.get(triples)
    if masks is None:
        masks = (
            int.from_bytes(b"\x00\x00\xff" * triples, "big"),
            int.from_bytes(b"\x01\x00\x00" * triples, "big"),
        )
        if len(_MASKS) < 4096:  # texts are <= 4096 chars, so lengths are bounded anyway
            _MASKS[triples] = masks
    return masks


def _fail(message: str) -> DecodeError:
    return DecodeError(Reason.MALFORMED_BASE45, message)


def decode(text: str) -> bytes:
    """Decode base45 text; raise DecodeError(malformed_base45) on any invalid input."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise _fail("base45 text has a non-ASCII character") from exc
    digits = raw.translate(_DIGIT_OF)
    if _INVALID in digits:
        raise _fail("base45 text has a character outside the alphabet")
    triples, rest = divmod(len(digits), 3)
    if rest == 1:
        raise _fail("base45 text length leaves a dangling character")
    m = 3 * triples
    # Read the digits big-endian as one integer: triple i is the 24-bit slot i from the top,
    # holding 65536*d0 + 256*d1 + d2. The masks pick each digit out of every slot at once;
    # weighting them by 1, 45 and 2025 leaves d0 + 45*d1 + 2025*d2 in each slot (< 2**17, so
    # no slot carries into the next, and a value above 0xFFFF has bit 16 set). Written out
    # big-endian, each slot is a zero byte (when valid) and the two output bytes.
    mask, high = _masks(triples)
    packed = int.from_bytes(digits[:m] if rest else digits, "big")
    value = ((packed >> 16) & mask) + 45 * ((packed >> 8) & mask) + 2025 * (packed & mask)
    if value & high:
        raise _fail("base45 triple encodes a value above 0xFFFF")
    out = bytearray(value.to_bytes(m, "big"))
    del out[0::3]
    if rest == 2:
        last = digits[m] + 45 * digits[m + 1]
        if last > 0xFF:
            raise _fail("base45 final pair encodes a value above 0xFF")
        out.append(last)
    return bytes(out)
