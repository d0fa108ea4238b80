"""Unit tests for protocol.framing: suffixes, prefix, AIM ids, limits, idle flush, decoding."""

from __future__ import annotations

import pytest

from suishen.protocol.framing import (
    NEED_DATA,
    Discarded,
    DiscardReason,
    FramedScan,
    FramingConfig,
    FramingError,
    ScanFramer,
    Suffix,
    encode_scan,
)


def texts(events: list[FramedScan | Discarded]) -> list[str]:
    return [e.text for e in events if isinstance(e, FramedScan)]


def reasons(events: list[FramedScan | Discarded]) -> list[str]:
    return [e.reason.value for e in events if isinstance(e, Discarded)]


@pytest.mark.parametrize(
    ("suffix", "wire"),
    [
        (Suffix.CR, b"A\rB\r"),
        (Suffix.LF, b"A\nB\n"),
        (Suffix.CRLF, b"A\r\nB\r\n"),
        (Suffix.ANY, b"A\rB\n"),
        (Suffix.ANY, b"A\r\nB\r\n"),
    ],
)
def test_each_suffix_ends_scans(suffix: Suffix, wire: bytes) -> None:
    """Every suffix setting splits its own wire format into the scans, CRLF counting once."""
    framer = ScanFramer(FramingConfig(suffix=suffix))
    assert texts(framer.receive(wire, 0.0)) == ["A", "B"]


def test_need_data_until_the_suffix() -> None:
    """A partial scan yields NEED_DATA; the suffix completes it."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR))
    framer.feed(b"SSC1:AB")
    assert framer.next_event(0.0) is NEED_DATA
    framer.feed(b"C\r")
    event = framer.next_event(0.0)
    assert isinstance(event, FramedScan)
    assert (event.text, event.byte_count, event.idle_flushed) == ("SSC1:ABC", 8, False)
    assert framer.next_event(0.0) is NEED_DATA


def test_crlf_split_between_cr_and_lf() -> None:
    """With suffix CRLF, a CR at the end of a chunk waits for the LF."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CRLF))
    assert framer.receive(b"ABC\r", 0.0) == []
    assert texts(framer.receive(b"\n", 0.0)) == ["ABC"]


def test_aim_identifier_is_stripped() -> None:
    """]Q1 / ]d2 / ]Q3 are stripped into symbology; a ']' not followed by an id is kept."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.LF))
    events = framer.receive(b"]Q1HC1:X\n]d2ABC\n]!!keep\n", 0.0)
    assert [(e.text, e.symbology) for e in events if isinstance(e, FramedScan)] == [
        ("HC1:X", "]Q1"),
        ("ABC", "]d2"),
        ("]!!keep", None),
    ]


def test_aim_stripping_can_be_turned_off() -> None:
    """strip_aim=False leaves the AIM id in the text."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.LF, strip_aim=False))
    (event,) = framer.receive(b"]Q1ABC\n", 0.0)
    assert isinstance(event, FramedScan)
    assert (event.text, event.symbology) == ("]Q1ABC", None)


def test_prefix_is_required_and_stripped() -> None:
    """With a prefix configured, it is stripped; a line without it is garbage (a fragment)."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR, prefix=b"\x02"))
    events = framer.receive(b"\x02]Q1ONE\rTWO\r", 0.0)
    assert texts(events) == ["ONE"]
    assert reasons(events) == ["garbage"]


def test_overlong_line_resynchronises_at_the_next_suffix() -> None:
    """Past max_length the line is dropped with one 'overlong' discard counting every byte,
    the buffer stays bounded, and the next line frames normally."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR, max_length=10))
    events: list[FramedScan | Discarded] = []
    for _ in range(100):
        events += framer.receive(b"x" * 10, 0.0)
        assert framer.pending_bytes <= 20
    events += framer.receive(b"\rOK\r", 0.0)
    assert events == [
        Discarded(reason=DiscardReason.OVERLONG, byte_count=1000),
        FramedScan(text="OK", byte_count=2),
    ]


def test_max_length_is_inclusive_and_excludes_prefix_and_aim() -> None:
    """A text of exactly max_length bytes is accepted even with a prefix and an AIM id."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR, prefix=b"P", max_length=5))
    events = framer.receive(b"P]Q112345\rP123456\r", 0.0)
    assert texts(events) == ["12345"]
    assert reasons(events) == ["overlong"]


@pytest.mark.parametrize(
    "line",
    [b"\x00abc", b"ab\x01c", b"abc\x7f", b"a\x1bb", b"]Q1"],
)
def test_garbage_lines(line: bytes) -> None:
    """NUL, other C0 controls, DEL, and a bare AIM id are garbage."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR))
    assert reasons(framer.receive(line + b"\rGOOD\r", 0.0)) == ["garbage"]


def test_allowed_controls_pass() -> None:
    """GS1 / ISO 15434 separators (GS, RS, EOT) and TAB are kept in the text."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR))
    assert texts(framer.receive(b"[)>\x1e06\x1d1P123\x04\ta\r", 0.0)) == [
        "[)>\x1e06\x1d1P123\x04\ta"
    ]


def test_wrong_suffix_without_idle_flush_is_garbage() -> None:
    """On suffix CR, LF-ended scans merge into one line holding LF: dropped as garbage,
    never delivered as a corrupted text; the next line is fine."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR))
    events = framer.receive(b"ONE\nTWO\r", 0.0) + framer.receive(b"THREE\r", 0.0)
    assert texts(events) == ["THREE"]
    assert reasons(events) == ["garbage"]


def test_leading_and_trailing_line_ends_are_tolerated() -> None:
    """On suffix LF, a CRLF sender's CR is dropped; on suffix CR, a stray LF is dropped."""
    assert texts(ScanFramer(FramingConfig(suffix=Suffix.LF)).receive(b"A\r\n", 0)) == ["A"]
    assert texts(ScanFramer(FramingConfig(suffix=Suffix.CR)).receive(b"A\r\nB\r", 0)) == ["A", "B"]


def test_utf8_and_gb18030_fallback() -> None:
    """UTF-8 decodes first; GB18030 bytes decode through the fallback; encoding is reported."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR))
    events = framer.receive("张三\r".encode() + "李四\r".encode("gb18030"), 0.0)
    assert [(e.text, e.encoding) for e in events if isinstance(e, FramedScan)] == [
        ("张三", "utf-8"),
        ("李四", "gb18030"),
    ]


def test_undecodable_and_fallback_off() -> None:
    """Bytes valid in neither encoding are 'undecodable'; without a fallback GB18030 is too."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR))
    assert reasons(framer.receive(b"\xff\xfe\r", 0.0)) == ["undecodable"]
    strict = ScanFramer(FramingConfig(suffix=Suffix.CR, fallback_encoding=None))
    assert reasons(strict.receive("李四\r".encode("gb18030"), 0.0)) == ["undecodable"]


def test_idle_flush_emits_an_unterminated_scan() -> None:
    """Bytes idle for idle_flush_s without a suffix are framed as a scan at that time, and
    idle_deadline() says when; before the deadline they wait."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR, idle_flush_s=0.5))
    framer.feed(b"NOSUFFIX\t", now=10.0)
    assert framer.next_event(10.2) is NEED_DATA
    assert framer.idle_deadline() == pytest.approx(10.5)
    event = framer.next_event(10.5)
    assert isinstance(event, FramedScan)
    assert (event.text, event.idle_flushed) == ("NOSUFFIX", True)
    assert framer.idle_deadline() is None


def test_idle_timer_restarts_with_each_byte() -> None:
    """The idle flush measures from the last byte, not the first."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR, idle_flush_s=0.5))
    framer.feed(b"AB")
    assert framer.next_event(1.0) is NEED_DATA  # stamps the arrival
    framer.feed(b"CD")
    assert framer.next_event(1.4) is NEED_DATA
    assert framer.next_event(1.8) is NEED_DATA
    event = framer.next_event(1.9)
    assert isinstance(event, FramedScan)
    assert event.text == "ABCD"


def test_suffix_none_relies_on_idle_flush() -> None:
    """Suffix NONE frames only by the idle flush, and requires one."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.NONE, idle_flush_s=0.1))
    assert framer.receive(b"ABC", 0.0) == []
    assert texts(framer.drain(0.1)) == ["ABC"]
    with pytest.raises(FramingError):
        FramingConfig(suffix=Suffix.NONE)


def test_idle_flush_ends_an_overlong_discard() -> None:
    """An overlong line that never gets a suffix is reported at the idle flush."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR, max_length=4, idle_flush_s=0.1))
    assert framer.receive(b"123456789", 0.0) == []
    assert framer.drain(0.2) == [Discarded(reason=DiscardReason.OVERLONG, byte_count=9)]


def test_reset_reports_a_truncated_partial() -> None:
    """reset() (link lost) drops a partial scan and reports it as 'truncated'."""
    framer = ScanFramer(FramingConfig(suffix=Suffix.CR))
    framer.feed(b"HALF")
    assert framer.reset() == Discarded(reason=DiscardReason.TRUNCATED, byte_count=4)
    assert framer.reset() is None
    assert texts(framer.receive(b"WHOLE\r", 0.0)) == ["WHOLE"]


def test_buffer_cap_is_enforced_and_receive_slices() -> None:
    """feed() refuses more unread bytes than buffer_cap; receive() slices any chunk."""
    config = FramingConfig(suffix=Suffix.CR, max_length=10, buffer_cap=64)
    framer = ScanFramer(config)
    with pytest.raises(FramingError):
        framer.feed(b"A\r" * 40)
    assert texts(ScanFramer(config).receive(b"A\r" * 400, 0.0)) == ["A"] * 400


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_length": 0},
        {"idle_flush_s": 0},
        {"prefix": b"\r"},
        {"allowed_controls": b"\n"},
        {"fallback_encoding": "no-such-codec"},
        {"max_length": 100, "buffer_cap": 50},
    ],
)
def test_impossible_configs_are_refused(kwargs: dict[str, object]) -> None:
    """Settings that cannot work raise FramingError at construction."""
    with pytest.raises(FramingError):
        FramingConfig(**kwargs)  # type: ignore[arg-type]


def test_encode_scan_round_trips() -> None:
    """encode_scan builds what a scanner sends; the framer gets back text and symbology."""
    config = FramingConfig(suffix=Suffix.CRLF, prefix=b"#")
    wire = encode_scan("SSC1:ABC", config, aim="]Q1")
    assert wire == b"#]Q1SSC1:ABC\r\n"
    (event,) = ScanFramer(config).receive(wire, 0.0)
    assert isinstance(event, FramedScan)
    assert (event.text, event.symbology) == ("SSC1:ABC", "]Q1")
    with pytest.raises(FramingError):
        encode_scan("x", config, aim="Q1")


def test_suffix_parse() -> None:
    """Suffix names parse case-insensitively; unknown names raise FramingError."""
    assert Suffix.parse("CRLF") is Suffix.CRLF
    assert Suffix.parse(" any ") is Suffix.ANY
    with pytest.raises(FramingError):
        Suffix.parse("TAB")
