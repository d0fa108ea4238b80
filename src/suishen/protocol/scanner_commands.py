"""Vendor command sets for serial QR scanners: trigger, beep and LED, behind one small table.

Pure: values in, bytes out. The serial driver writes what this module returns.

Honeywell (Xenon, Voyager, Granit, N36xx/N86xx engines; serial/USB-COM interface):

- Menu commands: ``SYN M CR`` (0x16 0x4D 0x0D), then Tag (3 chars) SubTag (3 chars) Data,
  more settings separated by ``,`` (same tag) or ``;`` (another tag), ended by the storage
  character: ``!`` applies to the volatile (RAM) table, ``.`` to the non-volatile (flash)
  table. Flash has a limited number of write cycles: use ``!`` for anything sent often.
  Example from the manuals: ``SYN M CR 232BAD9.`` sets 115200 baud.
- Serial trigger (the scanner must be in manual/serial trigger mode): activate
  ``SYN T CR``, deactivate ``SYN U CR``. It reads until a code is read, the deactivate
  command arrives, or the read time-out passes.
- Host acknowledgment escape commands (the scanner must have "Host ACK" turned on, which is
  done once with its programming bar code): ``ESC 1``/``ESC 2``/``ESC 3`` light the green
  LED for 135 ms / 2 s / 5 s; ``ESC 4``/``5``/``6`` beep at low/medium/high pitch;
  ``ESC 7`` indicates a successful decode, ``ESC 8`` an unsuccessful one (error tone);
  ``ESC a``/``ESC b`` indicate a successful/unsuccessful menu change.
  (Honeywell 1900g/2020 user guides, "Host ACK" / "Host Escape Commands".)
- ``SYN BEL CR``: beep. Quoted from Honeywell's knowledge base by third parties; not in the
  user guides we read.

Newland (NLS-HR/FR/FM series, "serial programming commands"):

- Frame: prefix ``~ SOH 0000`` (7E 01 30 30 30 30), storage type ``@`` (permanent) or ``#``
  (temporary, lost at power-off), Tag SubTag Data (``,`` same tag / ``;`` another tag),
  suffix ``; ETX`` (3B 03). Commands are upper case. The scanner answers
  ``STX SOH 0000 ... ACK ; ETX``. (NLS-HR52/HR42 user guides, "Use of Programming Command".)
- Trigger: ``SCNTRG1`` starts a scan, ``SCNTRG0`` stops it, in command-trigger mode
  (``SCNMOD0``). Not in the guides we read; taken from public integrations that drive
  Newland scanners this way, so it is marked ``documented=False``.
- Beep/LED: the guides we read describe only settings (e.g. ``GRBENA1``/``GRBENA0``, good-read
  beep on/off, also from public integrations); we found no documented host command that
  flashes the LED or beeps on demand. The table therefore has no Newland BEEP_* or LED_*
  entries, and commands_for_verdict() returns nothing for Newland: a lane that needs a
  visible verdict on a Newland scanner uses a separate indicator.

Exceptions: UnsupportedCommandError (a ProtocolError and a KeyError) when a vendor has no
(documented) command for an action.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from suishen.protocol.errors import ProtocolError

__all__ = [
    "COMMANDS",
    "Action",
    "CommandSpec",
    "UnsupportedCommandError",
    "Vendor",
    "command",
    "commands_for_verdict",
    "honeywell_menu",
    "newland_command",
    "supports",
]

SYN: Final = b"\x16"
ESC: Final = b"\x1b"
BEL: Final = b"\x07"
CR: Final = b"\r"
HONEYWELL_MENU_PREFIX: Final = SYN + b"M" + CR
NEWLAND_PREFIX: Final = b"~\x010000"
NEWLAND_SUFFIX: Final = b";\x03"


class UnsupportedCommandError(ProtocolError, KeyError):
    """The vendor has no (documented) command for this action."""

    def __init__(self, vendor: Vendor, action: Action) -> None:
        super().__init__(f"{vendor.value} scanners have no documented {action.value} command")
        self.vendor = vendor
        self.action = action


class Vendor(enum.StrEnum):
    HONEYWELL = "honeywell"
    NEWLAND = "newland"


class Action(enum.StrEnum):
    """What a lane can ask of a scanner."""

    TRIGGER_ON = "trigger_on"  # start a read (serial/command trigger mode)
    TRIGGER_OFF = "trigger_off"  # stop a read
    BEEP = "beep"  # one plain beep
    BEEP_LOW = "beep_low"
    BEEP_MEDIUM = "beep_medium"
    BEEP_HIGH = "beep_high"
    INDICATE_GOOD = "indicate_good"  # the scanner's own "good read" indication
    INDICATE_BAD = "indicate_bad"  # the scanner's own error tone
    LED_GREEN_SHORT = "led_green_short"  # green LED ~135 ms
    LED_GREEN_2S = "led_green_2s"
    LED_GREEN_5S = "led_green_5s"
    GOOD_READ_BEEP_ON = "good_read_beep_on"  # a setting: beep on each good read
    GOOD_READ_BEEP_OFF = "good_read_beep_off"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    """One command: its bytes and where they come from."""

    payload: bytes
    documented: bool  # True: from the vendor's user guide; False: seen in public integrations
    source: str  # where we read it
    requires: str = ""  # scanner setting the command needs ("Host ACK on", ...)


def honeywell_menu(body: str, *, persist: bool = False) -> bytes:
    """A Honeywell menu command: SYN M CR + body + '!' (RAM) or '.' (flash, persist=True).

    `body` is Tag SubTag Data, e.g. "232BAD9"; several are joined by ',' or ';'.
    """
    _check_ascii(body)
    return HONEYWELL_MENU_PREFIX + body.encode("ascii") + (b"." if persist else b"!")


def newland_command(body: str, *, persist: bool = False) -> bytes:
    """A Newland command: ~ SOH 0000 + '@' (permanent) or '#' (temporary) + body + '; ETX'."""
    _check_ascii(body)
    return NEWLAND_PREFIX + (b"@" if persist else b"#") + body.encode("ascii") + NEWLAND_SUFFIX


def _check_ascii(body: str) -> None:
    if not body or not body.isascii() or not body.isprintable():
        raise ValueError(f"command body must be printable ASCII, got {body!r}")


_HONEYWELL_GUIDE: Final = "Honeywell 1900g / 2020 user guide, Host ACK escape commands"
_HONEYWELL_TRIGGER: Final = "Honeywell N86xx / N36xx user guide, Trigger Commands"
_HOST_ACK: Final = "Host ACK on"
_NEWLAND_PUBLIC: Final = "public Newland integrations (not in the NLS-HR52 guide we read)"

_TABLE: dict[Vendor, dict[Action, CommandSpec]] = {
    Vendor.HONEYWELL: {
        Action.TRIGGER_ON: CommandSpec(
            payload=SYN + b"T" + CR,
            documented=True,
            source=_HONEYWELL_TRIGGER,
            requires="manual (serial) trigger mode",
        ),
        Action.TRIGGER_OFF: CommandSpec(
            payload=SYN + b"U" + CR,
            documented=True,
            source=_HONEYWELL_TRIGGER,
            requires="manual (serial) trigger mode",
        ),
        Action.BEEP: CommandSpec(
            payload=SYN + BEL + CR,
            documented=False,
            source="Honeywell knowledge base, as quoted by third parties",
        ),
        Action.LED_GREEN_SHORT: CommandSpec(
            payload=ESC + b"1", documented=True, source=_HONEYWELL_GUIDE, requires=_HOST_ACK
        ),
        Action.LED_GREEN_2S: CommandSpec(
            payload=ESC + b"2", documented=True, source=_HONEYWELL_GUIDE, requires=_HOST_ACK
        ),
        Action.LED_GREEN_5S: CommandSpec(
            payload=ESC + b"3", documented=True, source=_HONEYWELL_GUIDE, requires=_HOST_ACK
        ),
        Action.BEEP_LOW: CommandSpec(
            payload=ESC + b"4", documented=True, source=_HONEYWELL_GUIDE, requires=_HOST_ACK
        ),
        Action.BEEP_MEDIUM: CommandSpec(
            payload=ESC + b"5", documented=True, source=_HONEYWELL_GUIDE, requires=_HOST_ACK
        ),
        Action.BEEP_HIGH: CommandSpec(
            payload=ESC + b"6", documented=True, source=_HONEYWELL_GUIDE, requires=_HOST_ACK
        ),
        Action.INDICATE_GOOD: CommandSpec(
            payload=ESC + b"7", documented=True, source=_HONEYWELL_GUIDE, requires=_HOST_ACK
        ),
        Action.INDICATE_BAD: CommandSpec(
            payload=ESC + b"8", documented=True, source=_HONEYWELL_GUIDE, requires=_HOST_ACK
        ),
    },
    Vendor.NEWLAND: {
        Action.TRIGGER_ON: CommandSpec(
            payload=newland_command("SCNTRG1"),
            documented=False,
            source=_NEWLAND_PUBLIC,
            requires="command trigger mode (SCNMOD0)",
        ),
        Action.TRIGGER_OFF: CommandSpec(
            payload=newland_command("SCNTRG0"),
            documented=False,
            source=_NEWLAND_PUBLIC,
            requires="command trigger mode (SCNMOD0)",
        ),
        Action.GOOD_READ_BEEP_ON: CommandSpec(
            payload=newland_command("GRBENA1"), documented=False, source=_NEWLAND_PUBLIC
        ),
        Action.GOOD_READ_BEEP_OFF: CommandSpec(
            payload=newland_command("GRBENA0"), documented=False, source=_NEWLAND_PUBLIC
        ),
    },
}

COMMANDS: Final[Mapping[Vendor, Mapping[Action, CommandSpec]]] = MappingProxyType(
    {vendor: MappingProxyType(actions) for vendor, actions in _TABLE.items()}
)


def supports(vendor: Vendor, action: Action) -> bool:
    """Whether the table has a command for `action` on `vendor`'s scanners."""
    return action in COMMANDS[vendor]


def command(vendor: Vendor, action: Action) -> bytes:
    """The bytes for `action`; raises UnsupportedCommandError when there is none."""
    spec = COMMANDS[vendor].get(action)
    if spec is None:
        raise UnsupportedCommandError(vendor, action)
    return spec.payload


def commands_for_verdict(vendor: Vendor, *, allowed: bool) -> list[bytes]:
    """What to send so the scanner itself shows a verdict (best effort; may be empty).

    Honeywell: allowed -> green LED (short) + the good-read indication; denied -> the error
    tone. Newland: nothing (no documented on-demand beep/LED command, see module docstring).
    """
    wanted = (Action.LED_GREEN_SHORT, Action.INDICATE_GOOD) if allowed else (Action.INDICATE_BAD,)
    return [command(vendor, action) for action in wanted if supports(vendor, action)]
