"""OSDP (IEC 60839-11-5) for the Control Panel, as plain values (sans-I/O).

drivers/osdp.py drives readers through libosdp; this module says *what* goes to libosdp and
how to read what comes back, without importing it: the libosdp numbers it needs (command,
event, card format, LED colour, notification, status report and completion codes; a test
with libosdp installed checks each against ``osdp_sys``), the command and event dicts
libosdp's Python binding takes, field checks, the card-read -> scan text translation and a
read-only sniffer of the reader's replies on the wire. No I/O, clock reads or logging: the
time a reply arrived is a parameter.

Card data is at most 64 bytes
    OSDP's card-read reply (and libosdp, OSDP_EVENT_CARDREAD_MAX_DATALEN) carries at most
    64 bytes: enough for Wiegand numbers, IC card UIDs and short tokens, NOT for a signed
    Suishen QR code (a few hundred bytes), which travels over the serial or TCP scanners.

Card reads (``card_read_text``):
    - Wiegand 26 / 34 with both parity bits right: text = the card number in decimal
      (facility * 65536 + number, see protocol.wiegand), symbology "wiegand26"/"wiegand34";
    - a Wiegand read with a wrong parity bit is a misread: ``CardDropped(BAD_PARITY)``;
    - no data or more than 64 bytes: ``CardDropped(IMPOSSIBLE_LENGTH)``;
    - any other read (other bit counts, format "unspecified"): text = the bytes in
      upper-case hex, symbology "raw".

Signals (``signal_commands``): a colour becomes a temporary LED state for ``hold_ms``
(100 ms units, 1..255); a beep pattern (alternating on/off ms, starting with on) becomes
one buzzer command: OSDP repeats one on/off cycle, so the pattern's first on and off times
are used and the count is the number of on periods (a non-uniform pattern is approximated).

Output (``output_pulse_command``): a timed pulse is control code 5 (temporary on) for
1..255 units of 100 ms (at most 25.5 s, the width libosdp's binding passes);
``output_off_command`` sets the output permanently off, aborting any timed operation.

Guards: every value is checked against its OSDP field before it reaches libosdp (which
truncates to uint8 or crashes on oversize data); a value that does not fit raises
OsdpFieldError, which names the field, the value and the limit.

Reply sniffing (``ReplySniffer``): the PD->CP byte stream, read-only, gives per PD address
the time of its last valid reply and whether it answered a secure-channel challenge
(osdp_CCRYPT, security block type 0x12): how a key mismatch is told apart from a dead or
restarted reader.

Exceptions (the protocol tree, see protocol.errors)::

    ProtocolError
     +-- OsdpFieldError (also ValueError)   a value does not fit its OSDP field
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from suishen.protocol import wiegand
from suishen.protocol.errors import ProtocolError

__all__ = [
    "CARD_DATA_MAX",
    "RAW_SYMBOLOGY",
    "SCBK_LEN",
    "UNITS_MAX",
    "BuzzerTone",
    "CardDrop",
    "CardDropped",
    "CardFormat",
    "CardText",
    "Command",
    "Completion",
    "Event",
    "LedColour",
    "LedControl",
    "Notification",
    "OsdpFieldError",
    "OutputControl",
    "ReplySniffer",
    "StatusReport",
    "card_read_event",
    "card_read_text",
    "check_field",
    "crc16",
    "ms_to_units",
    "output_off_command",
    "output_pulse_command",
    "signal_commands",
]

CARD_DATA_MAX: Final = 64  # bytes; libosdp's OSDP_EVENT_CARDREAD_MAX_DATALEN
SCBK_LEN: Final = 16  # secure-channel base key, bytes (AES-128)
UNITS_MAX: Final = 255  # 100 ms units in a uint8 field (LED/buzzer times, output timer)
UNIT_MS: Final = 100
RAW_SYMBOLOGY: Final = "raw"

# --------------------------------------------------------------------------- libosdp numbers


class Command(enum.IntEnum):
    """libosdp's command ids (``osdp_sys.CMD_*``, enum osdp_cmd_e): which OSDP command."""

    OUTPUT = 1  # osdp_OUT: drive an output (relay)
    LED = 2  # osdp_LED: reader LED control
    BUZZER = 3  # osdp_BUZ: reader buzzer control


class Event(enum.IntEnum):
    """libosdp's event ids (``osdp_sys.EVENT_*``, enum osdp_event_type)."""

    CARDREAD = 1  # osdp_RAW / osdp_FMT: a card was read
    STATUS = 4  # an input/output/tamper/power status report (osdp_ISTATR, ...)
    NOTIFICATION = 5  # libosdp's own notifications to the application (not on the wire)


class Notification(enum.IntEnum):
    """libosdp notification types (``osdp_sys.EVENT_NOTIFICATION_*``); arg0 is the state."""

    SC_STATUS = 1  # the secure channel went up (arg0 1) or down (arg0 0)
    PD_STATUS = 2  # the PD went online (arg0 1) or offline (arg0 0)


class StatusReport(enum.IntEnum):
    """libosdp status report types (``osdp_sys.STATUS_REPORT_*``)."""

    INPUT = 0  # osdp_ISTATR: one byte per input, 0 inactive / 1 active


class CardFormat(enum.IntEnum):
    """osdp_RAW format codes (``osdp_sys.CARD_FMT_*``)."""

    RAW_UNSPECIFIED = 0  # a raw bit array, format not specified
    RAW_WIEGAND = 1  # Wiegand bits, MSB first, left-justified


class LedColour(enum.IntEnum):
    """OSDP LED colour codes (``osdp_sys.LED_COLOR_*``)."""

    NONE = 0  # off / black
    RED = 1
    GREEN = 2
    AMBER = 3


class Completion(enum.IntEnum):
    """libosdp's command completion status (``osdp_sys.COMPLETION_*``)."""

    OK = 0  # the PD acknowledged the command


class OutputControl(enum.IntEnum):
    """osdp_OUT control codes (OSDP spec, not libosdp's)."""

    PERMANENT_OFF = 1  # permanent state off, abort any timed operation
    PERMANENT_ON = 2  # permanent state on, abort any timed operation
    PERMANENT_OFF_TIMED = 3  # permanent state off, allow a timed operation to complete
    PERMANENT_ON_TIMED = 4  # permanent state on, allow a timed operation to complete
    TEMPORARY_ON = 5  # on for timer_count units, then back to the permanent state
    TEMPORARY_OFF = 6  # off for timer_count units, then back to the permanent state


class LedControl(enum.IntEnum):
    """osdp_LED temporary control codes (OSDP spec)."""

    TEMPORARY_CANCEL = 1  # cancel the temporary state, show the permanent one
    TEMPORARY_SET = 2  # set the temporary state and start its timer


class BuzzerTone(enum.IntEnum):
    """osdp_BUZ tone codes (OSDP spec)."""

    OFF = 1
    DEFAULT = 2


_LED_COLOURS: Final = {
    "green": LedColour.GREEN,
    "red": LedColour.RED,
    "amber": LedColour.AMBER,
    "off": LedColour.NONE,
}

# --------------------------------------------------------------------------- field checks


class OsdpFieldError(ProtocolError, ValueError):
    """A value does not fit its OSDP field; refused before it reaches libosdp."""

    def __init__(self, field_name: str, value: object, limit: str) -> None:
        super().__init__(f"{field_name}={value!r} out of range ({limit})")
        self.field = field_name
        self.value = value
        self.limit = limit


def check_field(name: str, value: int, lo: int, hi: int) -> int:
    """``value`` if it lies in lo..hi (both included), else OsdpFieldError naming ``name``."""
    if not lo <= value <= hi:
        raise OsdpFieldError(name, value, f"{lo}..{hi}")
    return value


def ms_to_units(name: str, ms: int, *, lo: int = 1) -> int:
    """Milliseconds to OSDP 100 ms units (rounded up), checked against a uint8 field."""
    limit = f"{lo * UNIT_MS}..{UNITS_MAX * UNIT_MS} ms"
    if ms < 0:
        raise OsdpFieldError(name, ms, limit)
    units = math.ceil(ms / UNIT_MS)
    if not lo <= units <= UNITS_MAX:
        raise OsdpFieldError(name, ms, limit)
    return units


# --------------------------------------------------------------------------- commands, events


def card_read_event(
    data: bytes, *, bit_length: int | None = None, reader_no: int = 0
) -> dict[str, int | bytes]:
    """A libosdp card-read event dict, checked: raw bytes (bit_length None) or Wiegand bits.

    Raises OsdpFieldError for empty data, more than 64 bytes (libosdp would overflow), or a
    bit length that does not end in the last byte.
    """
    if not 1 <= len(data) <= CARD_DATA_MAX:
        raise OsdpFieldError("card_data", len(data), f"1..{CARD_DATA_MAX} bytes")
    check_field("reader_no", reader_no, 0, 255)
    if bit_length is None:
        fmt, bits = CardFormat.RAW_UNSPECIFIED, len(data) * 8
    else:
        fmt, bits = CardFormat.RAW_WIEGAND, bit_length
        if not (len(data) - 1) * 8 < bits <= len(data) * 8:
            raise OsdpFieldError("bit_length", bits, f"{len(data) * 8 - 7}..{len(data) * 8}")
    return {
        "event": Event.CARDREAD.value,
        "reader_no": reader_no,
        "direction": 0,
        "format": fmt.value,
        "length": bits,
        "data": bytes(data),
    }


def signal_commands(
    colour: str,
    *,
    hold_ms: int,
    beeps: Sequence[int] = (),
    reader_no: int = 0,
    led_number: int = 0,
) -> list[dict[str, int | bool]]:
    """The LED (and, with beeps, buzzer) commands showing a signal, checked.

    ``colour`` is "green", "red", "amber" or "off"; ``beeps`` alternates on/off times in ms,
    starting with on (see the module docstring for how OSDP approximates it).
    """
    check_field("reader_no", reader_no, 0, 255)
    check_field("led_number", led_number, 0, 255)
    on_colour = _LED_COLOURS.get(colour)
    if on_colour is None:
        raise OsdpFieldError("colour", colour, "green/red/amber/off")
    led: dict[str, int | bool] = {
        "command": Command.LED.value,
        "reader": reader_no,
        "led_number": led_number,
        "temporary": True,
        "on_count": 0,
        "off_count": 0,
        "on_color": on_colour.value,
        "off_color": LedColour.NONE.value,
        "timer_count": 0,
    }
    if on_colour is LedColour.NONE:
        led["control_code"] = LedControl.TEMPORARY_CANCEL.value
    else:
        led["control_code"] = LedControl.TEMPORARY_SET.value
        led["on_count"] = 1  # steady on: on time set, off time 0
        led["timer_count"] = ms_to_units("hold_ms", hold_ms)
    commands = [led]
    if beeps:
        on_ms = beeps[0]
        off_ms = beeps[1] if len(beeps) > 1 else 0
        count = (len(beeps) + 1) // 2
        commands.append(
            {
                "command": Command.BUZZER.value,
                "reader": reader_no,
                "control_code": BuzzerTone.DEFAULT.value,
                "on_count": ms_to_units("beep_on_ms", on_ms),
                "off_count": ms_to_units("beep_off_ms", off_ms, lo=0),
                "rep_count": check_field("beep_count", count, 1, UNITS_MAX),
            }
        )
    return commands


def output_pulse_command(output_no: int, pulse_ms: int) -> dict[str, int]:
    """Output ``output_no`` on for ``pulse_ms`` (100 ms units, 1..255), then back off."""
    check_field("output_no", output_no, 0, 255)
    return {
        "command": Command.OUTPUT.value,
        "output_no": output_no,
        "control_code": OutputControl.TEMPORARY_ON.value,
        "timer_count": ms_to_units("pulse_ms", pulse_ms),
    }


def output_off_command(output_no: int) -> dict[str, int]:
    """Output ``output_no`` permanently off, aborting any timed pulse."""
    check_field("output_no", output_no, 0, 255)
    return {
        "command": Command.OUTPUT.value,
        "output_no": output_no,
        "control_code": OutputControl.PERMANENT_OFF.value,
        "timer_count": 0,
    }


# --------------------------------------------------------------------------- card reads


@dataclass(frozen=True, slots=True, kw_only=True)
class CardText:
    """A card read as scan text: the decimal card number (Wiegand) or upper-case hex (raw)."""

    text: str
    symbology: str  # "wiegand26", "wiegand34" or "raw"


class CardDrop(enum.StrEnum):
    IMPOSSIBLE_LENGTH = "impossible_length"  # no data, or more than CARD_DATA_MAX bytes
    BAD_PARITY = "bad_parity"  # a Wiegand read with a wrong parity bit: a misread


@dataclass(frozen=True, slots=True, kw_only=True)
class CardDropped:
    """A card read that yields no scan; ``length`` is in bytes (IMPOSSIBLE_LENGTH) or in
    bits as reported (BAD_PARITY). Never carries the card data."""

    reason: CardDrop
    length: int


def card_read_text(
    data: bytes, *, card_format: int | None, bit_length: int | None
) -> CardText | CardDropped:
    """Translate a libosdp card-read event's data, format and bit length into scan text."""
    if not data or len(data) > CARD_DATA_MAX:
        return CardDropped(reason=CardDrop.IMPOSSIBLE_LENGTH, length=len(data))
    bits = len(data) * 8 if bit_length is None else bit_length
    if card_format == CardFormat.RAW_WIEGAND:
        decoded = wiegand.decode(data, min(bits, len(data) * 8))
        if isinstance(decoded, wiegand.WiegandCard):
            return CardText(text=str(decoded.card_number), symbology=decoded.format.value)
        if decoded.reason is wiegand.WiegandReject.PARITY:
            return CardDropped(reason=CardDrop.BAD_PARITY, length=bits)
    return CardText(text=data.hex().upper(), symbology=RAW_SYMBOLOGY)


# --------------------------------------------------------------------------- the wire


def crc16(data: bytes) -> int:
    """OSDP's CRC-16 (CCITT polynomial 0x1021, initial value 0x1D0F, no reflection)."""
    crc = 0x1D0F
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


class ReplySniffer:
    """Watches the PD->CP byte stream (read-only) for which readers answer and how.

    ``feed(data, now)`` records, per PD address, ``now`` (the caller's monotonic time) as
    the time of its last valid reply, and whether it answered a secure-channel challenge
    (osdp_CCRYPT: security block type 0x12). Bytes that are not a valid packet (no start
    of message, an impossible length, a bad CRC or checksum) are skipped one at a time, so
    a packet after garbage is still found; a partial packet waits for the rest.
    """

    SOM: Final = 0x53  # start of message
    MAX_PACKET: Final = 1440
    _HEADER = 6  # SOM, address, length (2), control, first byte after the header
    _MIN_PACKET = 8  # header (5) + reply code + 16-bit CRC
    _CTRL_CRC = 0x04  # set: 16-bit CRC; clear: 8-bit checksum
    _CTRL_SCB = 0x08  # a security control block follows the header
    _SCS_CCRYPT = 0x12  # security block type of osdp_CCRYPT (the PD's challenge answer)

    def __init__(self) -> None:
        self._buf = bytearray()
        self.last_reply: dict[int, float] = {}
        self.answered_challenge: set[int] = set()

    def feed(self, data: bytes, now: float) -> None:
        self._buf += data
        buf = self._buf
        while True:
            start = buf.find(self.SOM)
            if start < 0:
                buf.clear()
                return
            del buf[:start]
            if len(buf) < self._HEADER:
                return
            length = buf[2] | (buf[3] << 8)
            ctrl = buf[4]
            if not self._MIN_PACKET <= length <= self.MAX_PACKET:
                del buf[:1]
                continue
            if len(buf) < length:
                return
            packet = bytes(buf[:length])
            if ctrl & self._CTRL_CRC:
                ok = crc16(packet[:-2]) == (packet[-2] | (packet[-1] << 8))
            else:
                ok = (sum(packet[:-1]) + packet[-1]) & 0xFF == 0
            if not ok:
                del buf[:1]
                continue
            del buf[:length]
            address = packet[1] & 0x7F
            self.last_reply[address] = now
            if ctrl & self._CTRL_SCB and packet[6] == self._SCS_CCRYPT:
                self.answered_challenge.add(address)
