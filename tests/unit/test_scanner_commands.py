"""Unit tests for protocol.scanner_commands: framing of vendor commands and the table."""

from __future__ import annotations

import pytest

from suishen.protocol.scanner_commands import (
    COMMANDS,
    Action,
    UnsupportedCommandError,
    Vendor,
    command,
    commands_for_verdict,
    honeywell_menu,
    newland_command,
    supports,
)


def test_honeywell_menu_framing() -> None:
    """SYN M CR + body + '!' (RAM) or '.' (flash), as the user guides' 232BAD9 example."""
    assert honeywell_menu("232BAD9", persist=True) == b"\x16M\r232BAD9."
    assert honeywell_menu("232BAD9") == b"\x16M\r232BAD9!"


def test_newland_framing() -> None:
    """~ SOH 0000 + '#' (temporary) or '@' (permanent) + body + '; ETX'."""
    assert newland_command("SCNTRG1") == b"~\x010000#SCNTRG1;\x03"
    assert newland_command("GRBENA1", persist=True) == b"~\x010000@GRBENA1;\x03"


@pytest.mark.parametrize("body", ["", "BAD\r", "名字"])
def test_bodies_must_be_printable_ascii(body: str) -> None:
    """Empty, control-holding or non-ASCII bodies are refused before reaching a device."""
    with pytest.raises(ValueError, match="printable ASCII"):
        honeywell_menu(body)
    with pytest.raises(ValueError, match="printable ASCII"):
        newland_command(body)


def test_honeywell_trigger_and_host_ack_commands() -> None:
    """Trigger SYN T CR / SYN U CR; Host ACK escapes ESC 1..8 for LED and tones."""
    assert command(Vendor.HONEYWELL, Action.TRIGGER_ON) == b"\x16T\r"
    assert command(Vendor.HONEYWELL, Action.TRIGGER_OFF) == b"\x16U\r"
    assert command(Vendor.HONEYWELL, Action.LED_GREEN_SHORT) == b"\x1b1"
    assert command(Vendor.HONEYWELL, Action.BEEP_HIGH) == b"\x1b6"
    assert command(Vendor.HONEYWELL, Action.INDICATE_BAD) == b"\x1b8"


def test_newland_trigger_uses_the_newland_frame() -> None:
    """Newland trigger commands are framed ~<SOH>0000#...;<ETX>."""
    payload = command(Vendor.NEWLAND, Action.TRIGGER_ON)
    assert payload.startswith(b"~\x010000#")
    assert payload.endswith(b";\x03")


def test_missing_commands_raise_a_typed_error() -> None:
    """Newland has no documented on-demand LED: UnsupportedCommandError (a KeyError)."""
    assert not supports(Vendor.NEWLAND, Action.LED_GREEN_SHORT)
    with pytest.raises(UnsupportedCommandError) as info:
        command(Vendor.NEWLAND, Action.LED_GREEN_SHORT)
    assert info.value.vendor is Vendor.NEWLAND
    assert isinstance(info.value, KeyError)


def test_verdict_commands() -> None:
    """Honeywell shows allow as green LED + good-read, deny as the error tone; Newland: none."""
    assert commands_for_verdict(Vendor.HONEYWELL, allowed=True) == [b"\x1b1", b"\x1b7"]
    assert commands_for_verdict(Vendor.HONEYWELL, allowed=False) == [b"\x1b8"]
    assert commands_for_verdict(Vendor.NEWLAND, allowed=True) == []


def test_table_is_honest_and_read_only() -> None:
    """Every entry names its source; undocumented ones say so; the table cannot be edited."""
    for actions in COMMANDS.values():
        for spec in actions.values():
            assert spec.source
            assert spec.payload
    assert not COMMANDS[Vendor.NEWLAND][Action.TRIGGER_ON].documented
    assert COMMANDS[Vendor.HONEYWELL][Action.TRIGGER_ON].documented
    with pytest.raises(TypeError):
        COMMANDS[Vendor.HONEYWELL][Action.BEEP] = COMMANDS[Vendor.HONEYWELL][Action.BEEP_LOW]  # type: ignore[index]
