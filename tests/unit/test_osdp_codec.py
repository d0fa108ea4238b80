"""The OSDP codec (protocol.osdp) without libosdp: CRC-16, the reply sniffer, field limits at
their exact boundaries, the signal/output commands and the card-read -> scan text translation.

The libosdp numbers the codec defines are checked against osdp_sys in
tests/integration/test_osdp.py (where libosdp is installed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.protocol import osdp, wiegand
from suishen.protocol.errors import ProtocolError
from suishen.protocol.osdp import (
    CARD_DATA_MAX,
    CardDrop,
    CardDropped,
    CardFormat,
    CardText,
    OsdpFieldError,
    ReplySniffer,
    crc16,
)
from suishen.protocol.wiegand import WiegandCard, WiegandFormat

PD = 101  # the PD address in the libosdp vectors below (0xE5 = reply bit | 101)


def with_crc(body: bytes) -> bytes:
    """An OSDP packet: ``body`` (SOM .. last data byte) followed by its CRC-16, LSB first."""
    return body + crc16(body).to_bytes(2, "little")


def with_checksum(body: bytes) -> bytes:
    """An OSDP packet: ``body`` followed by its 8-bit checksum (two's complement of the sum)."""
    return body + bytes([-sum(body) & 0xFF])


# libosdp's own test vectors (tests/unit: cp build packet, phy decode, cp fsm)
POLL_TO_101 = bytes.fromhex("53 65 08 00 04 60 60 90")  # CP -> PD osdp_POLL, SQN 0
ACK_SQN0 = bytes.fromhex("53 e5 08 00 04 40 d2 96")  # PD 101 -> CP osdp_ACK, SQN 0
ACK_SQN1 = bytes.fromhex("53 e5 08 00 05 40 e3 a5")
ACK_SQN2 = bytes.fromhex("53 e5 08 00 06 40 b0 f0")
PDCAP = bytes.fromhex("53 e5 0b 00 05 46 04 04 01 b3 ec")  # osdp_PDCAP, one capability


def ccrypt(address: int = PD) -> bytes:
    """An osdp_CCRYPT reply (the PD's answer to the CP's challenge): SCB type 0x12."""
    scb = bytes([0x03, 0x12, 0x01])  # length, SCS_12, SCBK (not the default key)
    data = bytes(range(32))  # client UID, client random, client cryptogram
    length = 5 + len(scb) + 1 + len(data) + 2
    header = bytes([0x53, 0x80 | address, length & 0xFF, length >> 8, 0x04 | 0x08 | 0x01])
    return with_crc(header + scb + bytes([0x76]) + data)


IMPURE = {"asyncio", "logging", "structlog", "socket", "select", "serial", "threading", "time"}
IMPURE |= {"datetime", "osdp", "osdp_sys"}


def test_the_codec_is_pure_and_does_not_import_libosdp() -> None:
    """protocol/osdp.py imports no I/O, logging or clock module and not libosdp (osdp_sys),
    so it works, and is tested, where libosdp is not installed."""
    tree = ast.parse(Path(osdp.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "suishen" in imported  # the walk sees imports at all
    assert not imported & IMPURE


# --------------------------------------------------------------------------- CRC-16


@pytest.mark.parametrize(
    "packet", [POLL_TO_101, ACK_SQN0, ACK_SQN1, ACK_SQN2, PDCAP], ids=lambda p: p.hex()
)
def test_crc16_matches_libosdp_packets(packet: bytes) -> None:
    """The CRC of each libosdp test packet's body equals its last two bytes (LSB first)."""
    assert crc16(packet[:-2]) == int.from_bytes(packet[-2:], "little")


def test_crc16_catalogue_check_value_and_initial_value() -> None:
    """OSDP's CRC is CRC-16/SPI-FUJITSU (poly 0x1021, init 0x1D0F): check value 0xE5CC for
    "123456789"; nothing fed leaves the initial value; one changed bit changes it."""
    assert crc16(b"123456789") == 0xE5CC
    assert crc16(b"") == 0x1D0F
    assert crc16(b"123456788") != 0xE5CC


# --------------------------------------------------------------------------- ReplySniffer


def test_sniffer_records_a_whole_reply_with_its_time() -> None:
    """A valid ACK from PD 101 records 101 at the time given; no challenge is recorded."""
    sniffer = ReplySniffer()
    sniffer.feed(ACK_SQN0, now=12.5)
    assert sniffer.last_reply == {PD: 12.5}
    assert sniffer.answered_challenge == set()


def test_sniffer_waits_for_a_packet_split_across_reads() -> None:
    """A reply arriving one byte per read is recorded only when its last byte arrives, at that
    read's time."""
    sniffer = ReplySniffer()
    for i, byte in enumerate(PDCAP[:-1]):
        sniffer.feed(bytes([byte]), now=float(i))
        assert sniffer.last_reply == {}
    sniffer.feed(PDCAP[-1:], now=99.0)
    assert sniffer.last_reply == {PD: 99.0}


def test_sniffer_skips_garbage_and_a_false_start_of_message() -> None:
    """Line noise, a 0x53 with an impossible length (too short, then too long) and a mark
    byte before the reply do not hide it."""
    sniffer = ReplySniffer()
    noise = b"\x00\xff\x12" + b"\x53\x01\x02\x00\x04" + b"\x53\x01\xa1\x05\x04" + b"\xff"
    sniffer.feed(noise + ACK_SQN1, now=1.0)
    assert sniffer.last_reply == {PD: 1.0}


def test_sniffer_drops_garbage_without_a_start_of_message() -> None:
    """Bytes with no 0x53 in them are discarded, not buffered without bound."""
    sniffer = ReplySniffer()
    sniffer.feed(bytes([0x00, 0x11, 0xFF]) * 1000, now=1.0)
    assert sniffer._buf == bytearray()
    sniffer.feed(ACK_SQN0, now=2.0)
    assert sniffer.last_reply == {PD: 2.0}


def test_sniffer_ignores_a_bad_crc_and_resynchronises() -> None:
    """A reply whose CRC does not match is not a reply (a corrupted frame says nothing about
    the reader); the valid reply after it is recorded."""
    sniffer = ReplySniffer()
    corrupt = bytearray(ACK_SQN0)
    corrupt[-1] ^= 0x01
    sniffer.feed(bytes(corrupt), now=1.0)
    assert sniffer.last_reply == {}
    sniffer.feed(ACK_SQN2, now=2.0)
    assert sniffer.last_reply == {PD: 2.0}


def test_sniffer_finds_a_reply_inside_a_false_frame() -> None:
    """A stray 0x53 whose claimed length (20 bytes) covers the real reply fails its CRC; the
    sniffer then moves on one byte, not the claimed length, and finds the reply inside."""
    sniffer = ReplySniffer()
    false_header = bytes([0x53, 0x01, 20, 0x00, 0x04])
    sniffer.feed(false_header + ACK_SQN0 + bytes(7), now=3.0)
    assert sniffer.last_reply == {PD: 3.0}


def test_sniffer_checks_checksum_packets() -> None:
    """Without the CRC bit in CTRL the packet ends in an 8-bit checksum: a right one is a
    reply, a wrong one is not."""
    body = bytes([0x53, 0x80 | 7, 0x0B, 0x00, 0x01, 0x46, 0x04, 0x04, 0x01, 0x00])
    assert len(with_checksum(body)) == 0x0B
    sniffer = ReplySniffer()
    bad = bytearray(with_checksum(body))
    bad[-1] ^= 0x10
    sniffer.feed(bytes(bad), now=1.0)
    assert sniffer.last_reply == {}
    sniffer.feed(with_checksum(body), now=2.0)
    assert sniffer.last_reply == {7: 2.0}


def test_sniffer_detects_the_ccrypt_answer_to_a_challenge() -> None:
    """An osdp_CCRYPT (security block type 0x12) marks its PD as having answered the
    challenge; a secure reply of another block type (0x16, a MAC'd reply) does not."""
    sniffer = ReplySniffer()
    sniffer.feed(ccrypt(PD), now=1.0)
    assert sniffer.answered_challenge == {PD}
    assert sniffer.last_reply == {PD: 1.0}
    other = ReplySniffer()
    scs16 = bytes([0x53, 0x80 | 5, 0x0E, 0x00, 0x0C, 0x02, 0x16, 0x40, 1, 2, 3, 4])
    other.feed(with_crc(scs16), now=1.0)
    assert other.last_reply == {5: 1.0}
    assert other.answered_challenge == set()


def test_sniffer_ignores_a_ccrypt_with_a_bad_crc() -> None:
    """A corrupted CCRYPT is no evidence of a key mismatch."""
    packet = bytearray(ccrypt(PD))
    packet[-2] ^= 0xFF
    sniffer = ReplySniffer()
    sniffer.feed(bytes(packet), now=1.0)
    assert sniffer.answered_challenge == set()
    assert sniffer.last_reply == {}


@given(st.lists(st.binary(max_size=40), max_size=20))
def test_sniffer_never_raises_on_arbitrary_bytes(chunks: list[bytes]) -> None:
    """Any byte stream, in any chunking, is consumed without an exception and a valid reply
    after it is still recorded."""
    sniffer = ReplySniffer()
    for chunk in chunks:
        sniffer.feed(chunk, now=0.0)
    # a stray header may claim up to MAX_PACKET bytes: flush it with non-SOM filler
    sniffer.feed(b"\x00" * ReplySniffer.MAX_PACKET, now=0.0)
    sniffer.feed(ACK_SQN0, now=5.0)
    assert sniffer.last_reply[PD] == 5.0


# --------------------------------------------------------------------------- field limits


def test_field_error_names_field_value_and_limit() -> None:
    """OsdpFieldError is a ProtocolError and a ValueError carrying field, value and limit."""
    with pytest.raises(OsdpFieldError) as refused:
        osdp.check_field("reader_no", 256, 0, 255)
    err = refused.value
    assert isinstance(err, ProtocolError)
    assert isinstance(err, ValueError)
    assert (err.field, err.value, err.limit) == ("reader_no", 256, "0..255")
    assert str(err) == "reader_no=256 out of range (0..255)"


@pytest.mark.parametrize(
    ("ms", "lo", "units"),
    [(1, 1, 1), (100, 1, 1), (101, 1, 2), (25_400, 1, 254), (25_500, 1, 255), (0, 0, 0)],
)
def test_ms_to_units_rounds_up_inside_the_field(ms: int, lo: int, units: int) -> None:
    """Milliseconds become 100 ms units rounded up; the edges 1 and 255 (or 0 if allowed) fit."""
    assert osdp.ms_to_units("t", ms, lo=lo) == units


@pytest.mark.parametrize(("ms", "lo"), [(0, 1), (-1, 0), (-1, 1), (25_501, 1), (25_600, 0)])
def test_ms_to_units_refuses_just_outside_the_field(ms: int, lo: int) -> None:
    """0 ms where at least one unit is needed, a negative time, and 25 501 ms (256 units)
    are refused with the field's range in ms."""
    with pytest.raises(OsdpFieldError) as refused:
        osdp.ms_to_units("hold_ms", ms, lo=lo)
    assert refused.value.field == "hold_ms"
    assert refused.value.limit == f"{lo * 100}..25500 ms"


def test_card_data_of_1_and_64_bytes_fits_0_and_65_do_not() -> None:
    """card_read_event takes 1..64 bytes of raw data and refuses 0 and 65 (libosdp would
    overflow its 64-byte buffer)."""
    for size in (1, CARD_DATA_MAX):
        event = osdp.card_read_event(bytes(range(size)))
        assert event["data"] == bytes(range(size))
        assert (event["format"], event["length"]) == (CardFormat.RAW_UNSPECIFIED, size * 8)
    for size in (0, CARD_DATA_MAX + 1):
        with pytest.raises(OsdpFieldError) as refused:
            osdp.card_read_event(bytes(size))
        assert (refused.value.field, refused.value.value) == ("card_data", size)


def test_wiegand_bit_length_must_end_in_the_last_byte() -> None:
    """4 bytes carry 25..32 Wiegand bits; 24 and 33 are refused."""
    for bits in (25, 32):
        event = osdp.card_read_event(bytes(4), bit_length=bits)
        assert (event["format"], event["length"]) == (CardFormat.RAW_WIEGAND, bits)
    for bits in (24, 33):
        with pytest.raises(OsdpFieldError) as refused:
            osdp.card_read_event(bytes(4), bit_length=bits)
        assert (refused.value.field, refused.value.limit) == ("bit_length", "25..32")


def test_reader_and_led_numbers_fit_a_byte() -> None:
    """reader_no and led_number take 0..255; -1 and 256 are refused, naming the field."""
    assert osdp.card_read_event(b"\x01", reader_no=255)["reader_no"] == 255
    led = osdp.signal_commands("red", hold_ms=100, reader_no=255, led_number=255)[0]
    assert (led["reader"], led["led_number"]) == (255, 255)
    for value in (-1, 256):
        with pytest.raises(OsdpFieldError, match="reader_no"):
            osdp.card_read_event(b"\x01", reader_no=value)
        with pytest.raises(OsdpFieldError, match="reader_no"):
            osdp.signal_commands("red", hold_ms=100, reader_no=value)
        with pytest.raises(OsdpFieldError, match="led_number"):
            osdp.signal_commands("red", hold_ms=100, led_number=value)


def test_led_hold_edges() -> None:
    """An LED hold of 25.5 s is 255 units; 25.6 s and 0 ms are refused."""
    assert osdp.signal_commands("green", hold_ms=25_500)[0]["timer_count"] == 255
    for hold_ms in (25_600, 0):
        with pytest.raises(OsdpFieldError) as refused:
            osdp.signal_commands("green", hold_ms=hold_ms)
        assert refused.value.field == "hold_ms"


def test_beep_count_and_times_edges() -> None:
    """255 on periods fit the buzzer's repeat count, 256 do not; an on time of 0 is refused
    while an off time of 0 is allowed; 25.5 s fits an on time, 25.6 s does not."""
    commands = osdp.signal_commands("red", hold_ms=100, beeps=(100, 100) * 254 + (100,))
    assert commands[1]["rep_count"] == 255
    with pytest.raises(OsdpFieldError) as refused:
        osdp.signal_commands("red", hold_ms=100, beeps=(100, 100) * 256)
    assert (refused.value.field, refused.value.value) == ("beep_count", 256)
    assert osdp.signal_commands("red", hold_ms=100, beeps=(100, 0))[1]["off_count"] == 0
    assert osdp.signal_commands("red", hold_ms=100, beeps=(25_500,))[1]["on_count"] == 255
    for beeps, name in (
        ((0,), "beep_on_ms"),
        ((25_600,), "beep_on_ms"),
        ((100, -1), "beep_off_ms"),
    ):
        with pytest.raises(OsdpFieldError) as refused:
            osdp.signal_commands("red", hold_ms=100, beeps=beeps)
        assert refused.value.field == name


def test_output_pulse_edges() -> None:
    """An output pulse takes 1..25 500 ms (1..255 units); 0 and 25 501 ms are refused."""
    assert osdp.output_pulse_command(0, 1)["timer_count"] == 1
    assert osdp.output_pulse_command(0, 25_500)["timer_count"] == 255
    for pulse_ms in (0, 25_501):
        with pytest.raises(OsdpFieldError) as refused:
            osdp.output_pulse_command(0, pulse_ms)
        assert refused.value.field == "pulse_ms"


# --------------------------------------------------------------------------- commands


def test_deny_signal_is_a_red_led_and_three_beeps() -> None:
    """Red for 1.5 s and five 100 ms on/off steps become a temporary red LED of 15 units and
    one buzzer command of 1 unit on, 1 unit off, 3 times."""
    led, buzzer = osdp.signal_commands("red", hold_ms=1500, beeps=(100, 100, 100, 100, 100))
    assert led == {
        "command": osdp.Command.LED,
        "reader": 0,
        "led_number": 0,
        "temporary": True,
        "control_code": osdp.LedControl.TEMPORARY_SET,
        "on_count": 1,
        "off_count": 0,
        "on_color": osdp.LedColour.RED,
        "off_color": osdp.LedColour.NONE,
        "timer_count": 15,
    }
    assert buzzer == {
        "command": osdp.Command.BUZZER,
        "reader": 0,
        "control_code": osdp.BuzzerTone.DEFAULT,
        "on_count": 1,
        "off_count": 1,
        "rep_count": 3,
    }


def test_off_cancels_the_temporary_led_and_no_beeps_send_no_buzzer() -> None:
    """Colour "off" cancels the temporary LED state (no timer, so any hold is accepted);
    a signal without beeps is the LED command alone; an unknown colour is refused."""
    (led,) = osdp.signal_commands("off", hold_ms=0)
    assert led["control_code"] == osdp.LedControl.TEMPORARY_CANCEL
    assert (led["on_color"], led["timer_count"]) == (osdp.LedColour.NONE, 0)
    assert len(osdp.signal_commands("amber", hold_ms=100)) == 1
    with pytest.raises(OsdpFieldError, match="colour"):
        osdp.signal_commands("blue", hold_ms=100)


def test_output_commands() -> None:
    """open is a temporary-on pulse of the output; keep shut is permanent off, no timer."""
    assert osdp.output_pulse_command(3, 500) == {
        "command": osdp.Command.OUTPUT,
        "output_no": 3,
        "control_code": osdp.OutputControl.TEMPORARY_ON,
        "timer_count": 5,
    }
    assert osdp.output_off_command(3) == {
        "command": osdp.Command.OUTPUT,
        "output_no": 3,
        "control_code": osdp.OutputControl.PERMANENT_OFF,
        "timer_count": 0,
    }


# --------------------------------------------------------------------------- card reads


def read(event: dict[str, int | bytes]) -> CardText | CardDropped:
    """What the CP makes of a card-read event as libosdp hands it over."""
    data, fmt, bits = event["data"], event["format"], event["length"]
    assert isinstance(data, bytes)
    assert isinstance(fmt, int)
    assert isinstance(bits, int)
    return osdp.card_read_text(data, card_format=fmt, bit_length=bits)


def test_wiegand_26_and_34_become_decimal_card_numbers() -> None:
    """W26 and W34 reads with good parity become the card number in decimal."""
    w26 = wiegand.encode(WiegandCard.from_card_number(WiegandFormat.W26, 12_345_678))
    w34 = wiegand.encode(WiegandCard.from_card_number(WiegandFormat.W34, 4_000_000_000))
    assert read(osdp.card_read_event(w26[0], bit_length=w26[1])) == CardText(
        text="12345678", symbology="wiegand26"
    )
    assert read(osdp.card_read_event(w34[0], bit_length=w34[1])) == CardText(
        text="4000000000", symbology="wiegand34"
    )


def test_wiegand_parity_error_is_dropped_without_the_data() -> None:
    """A W26 read with a wrong parity bit is dropped as a misread; the drop carries the bit
    count, not the card data."""
    data, bits = wiegand.encode(WiegandCard.from_card_number(WiegandFormat.W26, 777))
    flipped = bytes([data[0] ^ 0x80]) + data[1:]  # the even parity bit
    dropped = osdp.card_read_text(flipped, card_format=CardFormat.RAW_WIEGAND, bit_length=bits)
    assert dropped == CardDropped(reason=CardDrop.BAD_PARITY, length=26)


def test_raw_reads_become_upper_case_hex() -> None:
    """A raw read (format unspecified) is its bytes in upper-case hex, symbology "raw"; so is
    a Wiegand read of another bit count (32 bits), whose parity is not judged."""
    assert read(osdp.card_read_event(b"\x04\x11\xab\xcd")) == CardText(
        text="0411ABCD", symbology="raw"
    )
    assert osdp.card_read_text(
        b"\x04\x11\xab\xcd", card_format=CardFormat.RAW_WIEGAND, bit_length=32
    ) == CardText(text="0411ABCD", symbology="raw")
    data = bytes(range(CARD_DATA_MAX))
    assert read(osdp.card_read_event(data)) == CardText(text=data.hex().upper(), symbology="raw")


def test_missing_or_oversized_bit_count() -> None:
    """Without a bit count the data's whole bytes count (4 bytes: 32 bits, raw); a Wiegand
    bit count beyond the data is capped at the data (a 34-bit count on 4 bytes: raw)."""
    data = b"\x01\x02\x03\x04"
    expected = CardText(text="01020304", symbology="raw")
    assert osdp.card_read_text(data, card_format=CardFormat.RAW_WIEGAND, bit_length=None) == (
        expected
    )
    assert osdp.card_read_text(data, card_format=CardFormat.RAW_WIEGAND, bit_length=34) == (
        expected
    )


@pytest.mark.parametrize("size", [0, CARD_DATA_MAX + 1])
def test_impossible_card_data_lengths_are_dropped(size: int) -> None:
    """No data, or more than 64 bytes (which libosdp cannot deliver), is dropped with the
    byte count."""
    assert osdp.card_read_text(
        bytes(size), card_format=CardFormat.RAW_UNSPECIFIED, bit_length=size * 8
    ) == CardDropped(reason=CardDrop.IMPOSSIBLE_LENGTH, length=size)


@given(
    st.sampled_from(list(WiegandFormat)).flatmap(
        lambda fmt: st.tuples(
            st.just(fmt), st.integers(0, (1 << (24 if fmt is WiegandFormat.W26 else 32)) - 1)
        )
    )
)
def test_every_wiegand_card_number_round_trips(card: tuple[WiegandFormat, int]) -> None:
    """Any W26/W34 card number a reader encodes comes back from the CP as the same number."""
    fmt, number = card
    data, bits = wiegand.encode(WiegandCard.from_card_number(fmt, number))
    assert read(osdp.card_read_event(data, bit_length=bits)) == CardText(
        text=str(number), symbology=fmt.value
    )
