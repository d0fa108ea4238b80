"""Property tests for protocol.framing: total on any bytes, and independent of chunking."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from suishen.protocol.framing import (
    NEED_DATA,
    Discarded,
    FramedScan,
    FramingConfig,
    ScanFramer,
    Suffix,
    encode_scan,
)

# Bytes biased towards what matters to a framer: line ends, AIM ids, controls, UTF-8/GB18030.
ATOMS = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b"]Q1",
        b"]",
        b"\x00",
        b"\x1d",
        b"\x7f",
        b"\xff",
        b"#",
        b"A",
        b"ZZZZ",
        "张".encode(),
        "张".encode("gb18030"),
    ]
)
WIRE = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(ATOMS, st.binary(max_size=8)), max_size=80).map(b"".join),
)
CONFIGS = st.builds(
    FramingConfig,
    suffix=st.sampled_from([Suffix.CR, Suffix.LF, Suffix.CRLF, Suffix.ANY]),
    prefix=st.sampled_from([b"", b"#"]),
    strip_aim=st.booleans(),
    max_length=st.integers(min_value=1, max_value=40),
    fallback_encoding=st.sampled_from(["gb18030", None]),
)


def run(config: FramingConfig, chunks: list[bytes]) -> list[FramedScan | Discarded]:
    framer = ScanFramer(config)
    events: list[FramedScan | Discarded] = []
    for chunk in chunks:
        framer.feed(chunk)
        while (event := framer.next_event(0.0)) is not NEED_DATA:
            events.append(event)
    return events


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(config=CONFIGS, data=WIRE)
def test_any_bytes_give_only_typed_events(config: FramingConfig, data: bytes) -> None:
    """Whatever the bytes, the framer only ever yields FramedScan / Discarded / NEED_DATA,
    never raises, respects max_length, and a text never holds a line end."""
    events = run(config, [data])
    for event in events:
        assert isinstance(event, FramedScan | Discarded)
        if isinstance(event, FramedScan):
            assert "\r" not in event.text
            assert "\n" not in event.text
            assert len(event.text.encode(event.encoding)) <= config.max_length
            assert event.byte_count <= len(data)


@settings(max_examples=300, deadline=None)
@given(config=CONFIGS, data=WIRE, cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_output_does_not_depend_on_chunking(
    config: FramingConfig, data: bytes, cuts: list[int]
) -> None:
    """Feeding the same bytes in random chunks gives the same events as feeding them whole."""
    assert run(config, split(data, cuts)) == run(config, [data])


@settings(max_examples=150, deadline=None)
@given(config=CONFIGS, data=WIRE)
def test_byte_at_a_time_equals_whole(config: FramingConfig, data: bytes) -> None:
    """Splitting at every byte gives the same events as feeding the bytes whole."""
    assert run(config, [data[i : i + 1] for i in range(len(data))]) == run(config, [data])


@settings(max_examples=200, deadline=None)
@given(
    config=CONFIGS,
    texts=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20),
        max_size=10,
    ),
    aim=st.sampled_from([None, "]Q1", "]d2"]),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_encoded_scans_round_trip(
    config: FramingConfig, texts: list[str], aim: str | None, cuts: list[int]
) -> None:
    """Texts a scanner frames with encode_scan come back exactly, in order, however chunked
    (those within max_length; longer ones are discarded as overlong)."""
    aim = aim if config.strip_aim else None
    texts = [t for t in texts if not t.startswith("]")]  # such a text may read as an AIM id
    wire = b"".join(encode_scan(t, config, aim=aim) for t in texts)
    events = run(config, split(wire, cuts))
    expected = [(text, aim) for text in texts if len(text.encode()) <= config.max_length]
    assert [(e.text, e.symbology) for e in events if isinstance(e, FramedScan)] == expected
