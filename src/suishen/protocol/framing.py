"""Scanner byte-stream framing: arbitrary byte chunks in, scan texts and typed discards out.

Sans-I/O in the h11 manner: the driver feeds what the wire gave it, then pulls events until
NEED_DATA. Time is a parameter (``now``, any monotonic clock in seconds); nothing here reads
a clock, logs or does I/O::

    framer = ScanFramer(FramingConfig(suffix=Suffix.CR, idle_flush_s=0.2))
    framer.feed(chunk)                       # what os.read / data_received gave us
    while (event := framer.next_event(now)) is not NEED_DATA:
        ...                                  # FramedScan or Discarded
    deadline = framer.idle_deadline()        # call next_event(now) again at that time

Wire format of one scan: ``[prefix] [AIM id] text suffix``.

- suffix: CR, LF, CRLF, ANY (CR or LF; CRLF then counts once, because empty lines are
  skipped), or NONE (the scanner sends no suffix: only the idle flush ends a scan).
- prefix: optional fixed bytes. A line without the configured prefix is a fragment (e.g. we
  connected mid-scan) and is discarded as garbage.
- AIM symbology identifier (ISO/IEC 15424): ``]`` + code character (a letter) + modifier
  character (a letter or digit), e.g. ``]Q1`` (QR), ``]d2`` (Data Matrix); stripped and
  reported as ``FramedScan.symbology`` when ``strip_aim`` is on.
- Leading CR/LF bytes of a line and trailing CR/LF bytes are dropped (tolerates CRLF senders
  on a CR or LF setting). Empty lines produce no event.
- Idle flush: when bytes sit without a suffix for at least ``idle_flush_s`` (measured from
  the ``now`` of the first next_event() call after the last feed(), or the ``now`` given to
  feed()), they are framed as a scan; trailing CR, LF and TAB are dropped first (keyboard-
  wedge style scanners often end with TAB).

Discards (``Discarded.reason``; ``byte_count`` is the line's raw length without suffix):

- ``overlong``: the line is longer than the configured maximum. Once a partial line passes
  the maximum, its bytes are dropped as they arrive (the buffer stays bounded) until the next
  suffix (resynchronisation); one Discarded is emitted then, or at the idle flush.
- ``garbage``: the line holds control bytes a scan text cannot hold (C0 controls other than
  ``allowed_controls``, and DEL), lacks the configured prefix, or is only an AIM id.
- ``undecodable``: the bytes are neither UTF-8 nor the fallback encoding.
- ``truncated``: reset() dropped a partial line (the link went down mid-scan).
- ``dropped``: never from the framer: a driver reports a framed scan it had to drop because
  its lane's queue was full (the lane journals it as lane_busy).

Floods: ``DiscardFolder`` folds one lane's discards into rate-limited ``DiscardBurst``
records (at most one per ``interval_s``), so 40 KB of garbage makes a handful of journal
rows, not twenty thousand::

    folder = DiscardFolder(interval_s=1.0)
    burst = folder.add(discarded, now)       # a burst to record now, or None (counted)
    deadline = folder.deadline()             # call flush(now) at that time
    burst = folder.flush(now)                # the folded burst once its interval is over

Text decoding: strict UTF-8 first; if that fails, the ``fallback_encoding`` (default
GB18030, which many Chinese scanners emit when set to a "Chinese" output mode; GB18030 is a
superset of GBK and GB2312), strict; ``None`` disables the fallback. ``FramedScan.encoding``
says which one decoded the text.

The output does not depend on how the input is split into chunks (property-tested), as long
as no idle flush fires in between.

Exceptions: FramingError (a ProtocolError) when the framer is misused: a config that cannot
work, or more than ``buffer_cap`` unread bytes fed without pulling events.
"""

from __future__ import annotations

import codecs
import enum
from dataclasses import dataclass, field
from typing import Final, Literal

from suishen.protocol.errors import ProtocolError

__all__ = [
    "NEED_DATA",
    "DiscardBurst",
    "DiscardFolder",
    "DiscardReason",
    "Discarded",
    "FramedScan",
    "FramerEvent",
    "FramingConfig",
    "FramingError",
    "NeedData",
    "ScanFramer",
    "Suffix",
    "encode_scan",
]

CR: Final = 0x0D
LF: Final = 0x0A
HT: Final = 0x09
DEL: Final = 0x7F
_EOL: Final = b"\r\n"
AIM_LENGTH: Final = 3


class FramingError(ProtocolError, ValueError):
    """The framer was misused (impossible config, or fed past its buffer cap)."""


class Suffix(enum.StrEnum):
    """What ends one scan on the wire."""

    CR = "cr"
    LF = "lf"
    CRLF = "crlf"
    ANY = "any"  # CR or LF (CRLF counts once)
    NONE = "none"  # no suffix: the idle flush ends each scan

    @property
    def wire(self) -> bytes:
        """The bytes a sender puts after each scan (ANY sends CRLF; NONE sends nothing)."""
        return _SUFFIX_WIRE[self]

    @classmethod
    def parse(cls, name: str) -> Suffix:
        """Accept 'CR', 'lf', 'CRLF', 'any', 'none' (case-insensitive)."""
        try:
            return cls(name.strip().lower())
        except ValueError:
            raise FramingError(f"unknown suffix {name!r}; use CR, LF, CRLF, ANY or NONE") from None


_SUFFIX_WIRE: Final = {
    Suffix.CR: b"\r",
    Suffix.LF: b"\n",
    Suffix.CRLF: b"\r\n",
    Suffix.ANY: b"\r\n",
    Suffix.NONE: b"",
}


class DiscardReason(enum.StrEnum):
    """Why bytes were dropped instead of framed (a reason code the lane can journal)."""

    OVERLONG = "overlong"
    GARBAGE = "garbage"
    UNDECODABLE = "undecodable"
    TRUNCATED = "truncated"
    DROPPED = "dropped"  # a framed scan the driver dropped: its lane's queue was full


class NeedData(enum.Enum):
    """Sentinel type: the framer needs more bytes (or a later ``now``) to go on."""

    NEED_DATA = "need_data"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True, kw_only=True)
class FramedScan:
    """One scan as read: the text (prefix, AIM id and suffix removed)."""

    text: str
    symbology: str | None = None  # the AIM id as sent ("]Q1"), when stripped
    encoding: str = "utf-8"  # which decoding produced `text`
    byte_count: int  # raw bytes of the line, without the suffix
    idle_flushed: bool = False  # ended by the idle flush, not by a suffix

    def __post_init__(self) -> None:
        if not self.text:
            raise ValueError("FramedScan.text must not be empty")
        if self.byte_count < 1:
            raise ValueError("FramedScan.byte_count must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class Discarded:
    """Bytes dropped instead of framed, with the reason code."""

    reason: DiscardReason
    byte_count: int

    def __post_init__(self) -> None:
        if self.byte_count <= 0:
            raise ValueError("Discarded.byte_count must be positive")


FramerEvent = FramedScan | Discarded | Literal[NeedData.NEED_DATA]


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscardBurst:
    """Discards folded into one record: the first one's reason, and how many there were."""

    reason: DiscardReason  # the first discard's reason (what the burst began with)
    count: int  # discards folded in
    byte_count: int  # their bytes, together
    kinds: tuple[tuple[DiscardReason, int], ...]  # (reason, count) per reason, first seen first
    first_at: float  # `now` of the first and the last discard folded in
    last_at: float

    def __post_init__(self) -> None:
        if self.count < 1 or sum(n for _r, n in self.kinds) != self.count:
            raise ValueError("DiscardBurst.count must be positive and equal the kinds' counts")


@dataclass(slots=True)
class DiscardFolder:
    """Folds one lane's discards into bursts, at most one burst per ``interval_s``.

    The first discard after a quiet interval is a burst of its own, at once (a single bad
    read is recorded without delay); the discards that follow within the interval are
    counted into one pending burst, which ``flush`` hands out once the interval since the
    last burst is over (call it at ``deadline()``), or at once with ``force`` (shutdown).
    Time is a parameter (any monotonic clock in seconds); O(1) per discard.
    """

    interval_s: float = 1.0
    _last_out: float | None = field(default=None, init=False)
    _count: int = field(default=0, init=False)
    _bytes: int = field(default=0, init=False)
    _kinds: dict[DiscardReason, int] = field(default_factory=dict, init=False)
    _first: float = field(default=0.0, init=False)
    _last: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise FramingError("DiscardFolder.interval_s must be positive")

    def add(self, discarded: Discarded, now: float) -> DiscardBurst | None:
        """Count one discard; returns a burst to record now, or None (folded, pending)."""
        if not self._count and (self._last_out is None or now - self._last_out >= self.interval_s):
            self._last_out = now
            return DiscardBurst(
                reason=discarded.reason,
                count=1,
                byte_count=discarded.byte_count,
                kinds=((discarded.reason, 1),),
                first_at=now,
                last_at=now,
            )
        if not self._count:
            self._first = now
        self._count += 1
        self._bytes += discarded.byte_count
        self._kinds[discarded.reason] = self._kinds.get(discarded.reason, 0) + 1
        self._last = now
        return None

    @property
    def pending(self) -> int:
        """Discards counted but not yet handed out in a burst."""
        return self._count

    def deadline(self) -> float | None:
        """When the pending burst is due (None: nothing pending)."""
        if not self._count or self._last_out is None:
            return None
        return self._last_out + self.interval_s

    def flush(self, now: float, *, force: bool = False) -> DiscardBurst | None:
        """The pending burst once it is due (or at once with `force`); None otherwise."""
        deadline = self.deadline()
        if deadline is None or (now < deadline and not force):
            return None
        kinds = tuple(self._kinds.items())
        burst = DiscardBurst(
            reason=kinds[0][0],
            count=self._count,
            byte_count=self._bytes,
            kinds=kinds,
            first_at=self._first,
            last_at=self._last,
        )
        self._count = self._bytes = 0
        self._kinds = {}
        self._last_out = now
        return burst


# HT, EOT, FS, GS, RS: tab, and the ISO/IEC 15434 / GS1 separators some codes carry.
DEFAULT_ALLOWED_CONTROLS: Final = b"\t\x04\x1c\x1d\x1e"


@dataclass(frozen=True, slots=True, kw_only=True)
class FramingConfig:
    """How one scanner frames its output. Every field is a documented setting."""

    suffix: Suffix = Suffix.ANY  # what ends a scan
    prefix: bytes = b""  # fixed bytes the scanner sends before each scan (b"" = none)
    strip_aim: bool = True  # strip a leading AIM id (]Q1 ...) into FramedScan.symbology
    max_length: int = 8192  # longest accepted scan text, in bytes (prefix/AIM/suffix excluded)
    idle_flush_s: float | None = None  # frame bytes idle this long without a suffix; None = off
    fallback_encoding: str | None = "gb18030"  # tried when the bytes are not UTF-8
    allowed_controls: bytes = DEFAULT_ALLOWED_CONTROLS  # C0 controls a text may contain
    buffer_cap: int = 65536  # most unread bytes feed() accepts before pulling events

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise FramingError("max_length must be at least 1")
        if self.idle_flush_s is not None and not self.idle_flush_s > 0:
            raise FramingError("idle_flush_s must be positive (or None to disable)")
        if self.suffix is Suffix.NONE and self.idle_flush_s is None:
            raise FramingError("suffix NONE needs idle_flush_s: nothing else ends a scan")
        if any(b in _EOL for b in self.prefix):
            raise FramingError("prefix must not contain CR or LF")
        if any(b in _EOL or b >= 0x20 for b in self.allowed_controls):
            raise FramingError("allowed_controls holds C0 control bytes other than CR and LF")
        if self.buffer_cap < self.raw_max + 2:
            raise FramingError("buffer_cap must exceed max_length plus prefix, AIM id and suffix")
        if self.fallback_encoding is not None:
            try:
                codecs.lookup(self.fallback_encoding)
            except LookupError:
                raise FramingError(
                    f"unknown fallback encoding {self.fallback_encoding!r}"
                ) from None

    @property
    def raw_max(self) -> int:
        """Longest raw line (prefix + AIM id + text) that can still hold an acceptable scan."""
        return self.max_length + len(self.prefix) + (AIM_LENGTH if self.strip_aim else 0)


def encode_scan(
    text: str,
    config: FramingConfig,
    *,
    aim: str | None = None,
    encoding: str = "utf-8",
) -> bytes:
    """The bytes a scanner set up as `config` sends for `text` (for simulators and tests)."""
    aim_bytes = b""
    if aim:
        aim_bytes = aim.encode("ascii")
        if not _is_aim(aim_bytes):
            raise FramingError(f"{aim!r} is not an AIM symbology identifier")
    return config.prefix + aim_bytes + text.encode(encoding) + config.suffix.wire


def _is_aim(head: bytes) -> bool:
    return (
        len(head) >= AIM_LENGTH
        and head[0] == 0x5D  # ']'
        and chr(head[1]).isascii()
        and chr(head[1]).isalpha()
        and chr(head[2]).isascii()
        and chr(head[2]).isalnum()
    )


@dataclass(slots=True)
class ScanFramer:
    """Feed/pull decoder for one scanner link (one per connection)."""

    config: FramingConfig = field(default_factory=FramingConfig)
    _buf: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _searched: int = field(default=0, init=False, repr=False)  # no suffix in _buf[:_searched]
    _discarding: bool = field(default=False, init=False, repr=False)
    _discarded: int = field(default=0, init=False, repr=False)  # overlong bytes dropped so far
    _last_rx: float | None = field(default=None, init=False, repr=False)
    _fresh: bool = field(default=False, init=False, repr=False)  # fed since the last pull

    # ------------------------------------------------------------------ public API

    def feed(self, data: bytes, *, now: float | None = None) -> None:
        """Add bytes from the wire. `now` (optional) stamps their arrival for the idle flush;
        without it, the `now` of the next next_event() call does."""
        if not data:
            return
        if len(self._buf) + len(data) > self.config.buffer_cap:
            raise FramingError(
                f"fed {len(self._buf) + len(data)} unread bytes, more than buffer_cap "
                f"{self.config.buffer_cap}; pull events between feeds (see receive())"
            )
        self._buf += data
        if now is None:
            self._fresh = True
        else:
            self._last_rx, self._fresh = now, False

    def next_event(self, now: float) -> FramerEvent:
        """The next FramedScan or Discarded, or NEED_DATA."""
        if self._fresh:
            self._last_rx, self._fresh = now, False
        while True:
            if self._discarding:
                return self._continue_discard(now)
            found = self._find_suffix()
            if found is not None:
                start, end = found
                line = bytes(self._buf[:start])
                del self._buf[:end]
                self._searched = 0
                event = self._line_event(line, idle=False)
                if event is None:
                    continue  # an empty line
                return event
            if self._partial_length() > self.config.raw_max:
                self._discarding = True
                continue
            if self._buf and self._idle(now):
                line = bytes(self._buf)
                self._buf.clear()
                self._searched = 0
                event = self._line_event(line, idle=True)
                if event is None:
                    continue
                return event
            return NEED_DATA

    def receive(self, data: bytes, now: float) -> list[FramedScan | Discarded]:
        """feed() then pull every event; slices `data` so any chunk size is accepted."""
        events: list[FramedScan | Discarded] = []
        step = max(1, self.config.buffer_cap - self.config.raw_max - 2)
        for offset in range(0, len(data), step):
            self.feed(data[offset : offset + step], now=now)
            events.extend(self.drain(now))
        if not data:
            events.extend(self.drain(now))
        return events

    def drain(self, now: float) -> list[FramedScan | Discarded]:
        """Pull events until NEED_DATA."""
        events: list[FramedScan | Discarded] = []
        while (event := self.next_event(now)) is not NEED_DATA:
            events.append(event)
        return events

    def idle_deadline(self) -> float | None:
        """When next_event() would idle-flush the pending bytes (None: nothing pending, no
        idle flush configured, or the arrival time is not stamped yet)."""
        if self.config.idle_flush_s is None or self._last_rx is None or self._fresh:
            return None
        if not self._buf and not self._discarding:
            return None
        return self._last_rx + self.config.idle_flush_s

    def reset(self) -> Discarded | None:
        """Forget any partial line (the link went down); returns what was dropped, if any."""
        dropped = self._discarded + len(self._buf)
        self._buf.clear()
        self._searched = 0
        self._discarding = False
        self._discarded = 0
        self._fresh = False
        self._last_rx = None
        if dropped:
            return Discarded(reason=DiscardReason.TRUNCATED, byte_count=dropped)
        return None

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a scan not yet ended (plus unread complete lines)."""
        return len(self._buf)

    # ------------------------------------------------------------------ internals

    def _idle(self, now: float) -> bool:
        flush = self.config.idle_flush_s
        return flush is not None and self._last_rx is not None and now - self._last_rx >= flush

    def _find_suffix(self) -> tuple[int, int] | None:
        """(start, end) of the first suffix in the buffer, or None."""
        buf, suffix = self._buf, self.config.suffix
        begin = self._searched
        if suffix is Suffix.NONE:
            return None
        if suffix is Suffix.CRLF:
            i = buf.find(b"\r\n", begin)
            if i >= 0:
                return i, i + 2
            # A trailing CR may be the first half of the next suffix: search it again.
            self._searched = max(0, len(buf) - 1)
            return None
        if suffix is Suffix.CR:
            i = buf.find(b"\r", begin)
        elif suffix is Suffix.LF:
            i = buf.find(b"\n", begin)
        else:
            i_cr, i_lf = buf.find(b"\r", begin), buf.find(b"\n", begin)
            i = i_lf if i_cr < 0 else i_cr if i_lf < 0 else min(i_cr, i_lf)
        if i >= 0:
            return i, i + 1
        self._searched = len(buf)
        return None

    def _partial_length(self) -> int:
        """Raw length so far of the unterminated line in the buffer (suffix bytes excluded)."""
        n = len(self._buf)
        if self.config.suffix is Suffix.CRLF and n and self._buf[-1] == CR:
            n -= 1  # maybe the first half of CRLF
        return n

    def _continue_discard(self, now: float) -> FramerEvent:
        found = self._find_suffix()
        if found is not None:
            start, end = found
            count = self._discarded + start
            del self._buf[:end]
            self._searched = 0
            self._discarding, self._discarded = False, 0
            return Discarded(reason=DiscardReason.OVERLONG, byte_count=count)
        keep = len(self._buf) - self._partial_length()  # a trailing CR of a CRLF suffix
        self._discarded += len(self._buf) - keep
        del self._buf[: len(self._buf) - keep]
        self._searched = 0
        if self._idle(now):
            count = self._discarded + len(self._buf)
            self._buf.clear()
            self._discarding, self._discarded = False, 0
            return Discarded(reason=DiscardReason.OVERLONG, byte_count=count)
        return NEED_DATA

    def _line_event(self, raw: bytes, *, idle: bool) -> FramedScan | Discarded | None:
        """Turn one raw line (suffix removed) into an event; None for an empty line."""
        cfg = self.config
        size = len(raw)
        if size > cfg.raw_max:  # before the empty check: streaming discards agree (see tests)
            return Discarded(reason=DiscardReason.OVERLONG, byte_count=size)
        content = raw.lstrip(_EOL).rstrip(b"\r\n\t" if idle else _EOL)
        if not content:
            return None
        if cfg.prefix:
            if not content.startswith(cfg.prefix):
                return Discarded(reason=DiscardReason.GARBAGE, byte_count=size)
            content = content[len(cfg.prefix) :]
        symbology: str | None = None
        if cfg.strip_aim and _is_aim(content):
            symbology = content[:AIM_LENGTH].decode("ascii")
            content = content[AIM_LENGTH:]
        if not content:
            return Discarded(reason=DiscardReason.GARBAGE, byte_count=size)
        if len(content) > cfg.max_length:
            return Discarded(reason=DiscardReason.OVERLONG, byte_count=size)
        allowed = cfg.allowed_controls
        if any((b < 0x20 and b not in allowed) or b == DEL for b in content):
            return Discarded(reason=DiscardReason.GARBAGE, byte_count=size)
        text, encoding = _decode(content, cfg.fallback_encoding)
        if text is None:
            return Discarded(reason=DiscardReason.UNDECODABLE, byte_count=size)
        return FramedScan(
            text=text,
            symbology=symbology,
            encoding=encoding,
            byte_count=size,
            idle_flushed=idle,
        )


def _decode(content: bytes, fallback: str | None) -> tuple[str | None, str]:
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if fallback is not None:
        try:
            return content.decode(fallback), fallback
        except UnicodeDecodeError:
            pass
    return None, "utf-8"
