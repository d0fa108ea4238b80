"""A strict CBOR (RFC 8949) decoder for untrusted code bytes: no semantic tags, bounded.

cbor2 interprets semantic tags while it decodes (decimal fractions, bigfloats, dates, regular
expressions, shared references that make cycles...) and each brings its own exceptions and
costs. A scanned code needs none of them, so this decoder returns every tag as a raw
``cbor2.CBORTag`` (the caller decides which tags it accepts: COSE_Sign1 and CWT on the outside,
none inside), and raises exactly one exception, CBORInvalid, for anything it refuses:
truncated or trailing bytes, invalid UTF-8, reserved headers, nesting deeper than
MAX_DEPTH, map keys other than integers, text and byte strings, lengths beyond the input.

Maps are plain dicts (a repeated key keeps the last value, as in cbor2); arrays are lists;
simple values are cbor2's CBORSimpleValue / undefined; floats are Python floats.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import cbor2

MAX_DEPTH: Final = 16  # COSE_Sign1 + claims + a DCC nest five or six deep

_F16: Final = struct.Struct(">e").unpack_from
_F32: Final = struct.Struct(">f").unpack_from
_F64: Final = struct.Struct(">d").unpack_from
_KEY_TYPES: Final = frozenset({int, str, bytes})  # exact types: a bool key would equal 1


class CBORInvalid(ValueError):
    """The bytes are not one well-formed CBOR item this decoder accepts."""


def loads(data: bytes) -> Any:
    """Decode exactly one CBOR item from `data`; raise CBORInvalid for anything else."""
    decoder = _Decoder(data)
    try:
        value = decoder.item(0)
    except IndexError as exc:  # reading a header byte past the end
        raise CBORInvalid("CBOR is truncated") from exc
    if decoder.pos != len(data):
        raise CBORInvalid("trailing bytes after the CBOR item")
    return value


class _Decoder:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def item(self, depth: int) -> Any:
        data, pos = self.data, self.pos
        head = data[pos]
        pos += 1
        major, info = head >> 5, head & 31
        if info < 24:
            arg = info
        elif info < 28:  # 1, 2, 4 or 8 bytes of argument follow
            end = pos + (1 << (info - 24))
            if end > len(data):
                raise CBORInvalid("CBOR is truncated")
            arg = int.from_bytes(data[pos:end], "big")
            pos = end
        elif info == 31:
            self.pos = pos
            return self._indefinite(major, depth)
        else:
            raise CBORInvalid(f"reserved additional information {info}")
        self.pos = pos
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            end = pos + arg
            if end > len(data):
                raise CBORInvalid("CBOR is truncated")
            self.pos = end
            if major == 2:
                return data[pos:end]
            try:
                return data[pos:end].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CBORInvalid("text string is not UTF-8") from exc
        if major == 7:
            return self._simple(info, arg)
        if depth >= MAX_DEPTH:
            raise CBORInvalid(f"CBOR nests deeper than {MAX_DEPTH}")
        if major == 4:
            if arg > len(data) - pos:  # every item takes at least one byte
                raise CBORInvalid("array is longer than the input")
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            if 2 * arg > len(data) - pos:
                raise CBORInvalid("map is longer than the input")
            return self._map(arg, depth + 1)
        return cbor2.CBORTag(arg, self.item(depth + 1))  # major 6: kept raw, not interpreted

    def _map(self, count: int, depth: int) -> dict[Any, Any]:  # noqa: PLR0915 - inlined on purpose
        """A definite-length map. The shapes a claims map is made of (integers, text and
        byte strings with a length under 256, maps of fewer than 24 entries) are decoded in
        place, without a call per key and value; every other item goes through ``item``,
        which decodes those shapes the same way (same limits, same errors)."""
        data, pos, size = self.data, self.pos, len(self.data)
        out: dict[Any, Any] = {}
        try:
            for _ in range(count):
                head = data[pos]
                if head < 0x18:  # unsigned 0..23
                    key: Any = head
                    pos += 1
                elif 0x20 <= head < 0x38:  # negative -1..-24
                    key = 0x1F - head
                    pos += 1
                elif 0x60 <= head < 0x78:  # text of 0..23 bytes
                    start = pos + 1
                    pos = start + (head & 31)
                    if pos > size:
                        raise CBORInvalid("CBOR is truncated")
                    key = data[start:pos].decode("utf-8")
                elif head == 0x39:  # negative, two bytes (-261 and the like)
                    start = pos + 1
                    pos = start + 2
                    if pos > size:
                        raise CBORInvalid("CBOR is truncated")
                    key = -1 - int.from_bytes(data[start:pos], "big")
                else:
                    self.pos = pos
                    key = self.item(depth)
                    pos = self.pos
                    if type(key) not in _KEY_TYPES:
                        raise CBORInvalid("map key is not an integer, text or byte string")
                head = data[pos]
                if head < 0x18:
                    out[key] = head
                    pos += 1
                elif 0x40 <= head < 0x58 or 0x60 <= head < 0x78:  # bytes or text, 0..23 bytes
                    start = pos + 1
                    pos = start + (head & 31)
                    if pos > size:
                        raise CBORInvalid("CBOR is truncated")
                    out[key] = data[start:pos] if head < 0x60 else data[start:pos].decode("utf-8")
                elif 0x18 <= head < 0x1C or 0x38 <= head < 0x3C:  # integer, 1..8 bytes follow
                    start = pos + 1
                    pos = start + (1 << ((head & 31) - 24))
                    if pos > size:
                        raise CBORInvalid("CBOR is truncated")
                    arg = int.from_bytes(data[start:pos], "big")
                    out[key] = arg if head < 0x20 else -1 - arg
                elif head in (0x58, 0x78):  # bytes or text, one byte of length
                    start = pos + 2
                    pos = start + data[pos + 1]
                    if pos > size:
                        raise CBORInvalid("CBOR is truncated")
                    out[key] = data[start:pos] if head < 0x60 else data[start:pos].decode("utf-8")
                elif 0x20 <= head < 0x38:
                    out[key] = 0x1F - head
                    pos += 1
                elif 0xA0 <= head < 0xB8:  # a map of 0..23 entries
                    if depth >= MAX_DEPTH:
                        raise CBORInvalid(f"CBOR nests deeper than {MAX_DEPTH}")
                    entries = head & 31
                    if 2 * entries > size - pos - 1:
                        raise CBORInvalid("map is longer than the input")
                    self.pos = pos + 1
                    out[key] = self._map(entries, depth + 1)
                    pos = self.pos
                else:
                    self.pos = pos
                    out[key] = self.item(depth)
                    pos = self.pos
        except UnicodeDecodeError as exc:
            raise CBORInvalid("text string is not UTF-8") from exc
        self.pos = pos
        return out

    def _indefinite(self, major: int, depth: int) -> Any:
        if major in (2, 3):
            chunks = []
            while not self._at_break():
                head = self.data[self.pos]
                if head >> 5 != major or head & 31 == 31:
                    raise CBORInvalid("bad chunk in an indefinite-length string")
                chunks.append(self.item(depth))
            if major == 2:
                return b"".join(chunks)
            return "".join(chunks)  # each chunk is valid UTF-8 on its own (RFC 8949 §3.2.3)
        if major == 7:
            raise CBORInvalid("break outside an indefinite-length item")
        if major in (0, 1, 6):
            raise CBORInvalid("indefinite length on an integer or tag")
        if depth >= MAX_DEPTH:
            raise CBORInvalid(f"CBOR nests deeper than {MAX_DEPTH}")
        if major == 4:
            items = []
            while not self._at_break():
                items.append(self.item(depth + 1))
            return items
        out: dict[Any, Any] = {}
        while not self._at_break():
            key = self._key(depth + 1)
            out[key] = self.item(depth + 1)
        return out

    def _at_break(self) -> bool:
        if self.data[self.pos] == 0xFF:
            self.pos += 1
            return True
        return False

    def _key(self, depth: int) -> Any:
        key = self.item(depth)
        if type(key) not in _KEY_TYPES:
            raise CBORInvalid("map key is not an integer, text or byte string")
        return key

    def _simple(self, info: int, arg: int) -> Any:
        if info < 20:
            return cbor2.CBORSimpleValue(info)
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 23:
            return cbor2.undefined
        if info == 24:
            if arg < 32:
                raise CBORInvalid("two-byte simple value below 32")
            return cbor2.CBORSimpleValue(arg)
        raw = arg.to_bytes(1 << (info - 24), "big")
        return (_F16 if info == 25 else _F32 if info == 26 else _F64)(raw)[0]
