"""Unit and property tests for protocol.framing.DiscardFolder: a lane's discards folded into
rate-limited bursts, nothing lost."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.protocol.framing import DiscardBurst, Discarded, DiscardFolder, DiscardReason

GARBAGE = Discarded(reason=DiscardReason.GARBAGE, byte_count=2)
OVERLONG = Discarded(reason=DiscardReason.OVERLONG, byte_count=9000)


def test_a_single_discard_is_a_burst_at_once() -> None:
    """The first discard after a quiet interval is recorded at once, with a count of one."""
    folder = DiscardFolder(interval_s=1.0)
    burst = folder.add(GARBAGE, 10.0)
    assert burst == DiscardBurst(
        reason=DiscardReason.GARBAGE,
        count=1,
        byte_count=2,
        kinds=((DiscardReason.GARBAGE, 1),),
        first_at=10.0,
        last_at=10.0,
    )
    assert folder.deadline() is None
    assert folder.add(GARBAGE, 11.5) is not None  # quiet for longer than the interval


def test_a_flood_is_one_burst_per_interval_with_its_count() -> None:
    """20,000 discards within 0.5 s: one burst at once, then one folded burst when the
    interval is over, counting the other 19,999 and keeping the first one's reason."""
    folder = DiscardFolder(interval_s=1.0)
    assert folder.add(OVERLONG, 0.0) is not None
    for i in range(1, 20_000):
        assert folder.add(GARBAGE if i % 2 else OVERLONG, i * 0.5 / 20_000) is None
    assert folder.deadline() == 1.0
    assert folder.flush(0.99) is None
    burst = folder.flush(1.0)
    assert burst is not None
    assert (burst.reason, burst.count) == (DiscardReason.GARBAGE, 19_999)
    assert dict(burst.kinds) == {DiscardReason.GARBAGE: 10_000, DiscardReason.OVERLONG: 9_999}
    assert burst.byte_count == 10_000 * 2 + 9_999 * 9000
    assert folder.pending == 0 and folder.deadline() is None


def test_force_flush_hands_out_the_pending_burst_early() -> None:
    """At shutdown the pending burst is handed out before its interval is over."""
    folder = DiscardFolder(interval_s=5.0)
    folder.add(GARBAGE, 0.0)
    folder.add(GARBAGE, 0.1)
    assert folder.flush(0.2) is None
    burst = folder.flush(0.2, force=True)
    assert burst is not None and burst.count == 1


def test_interval_must_be_positive() -> None:
    """A folder that could never hand out a burst is refused."""
    with pytest.raises(ValueError, match="interval_s"):
        DiscardFolder(interval_s=0)


@given(st.lists(st.floats(min_value=0, max_value=0.3), min_size=1, max_size=300))
def test_nothing_is_lost_and_bursts_are_rate_limited(gaps: list[float]) -> None:
    """For any arrival pattern, the bursts (flushed when due, and forced at the end) count
    every discard exactly once, and no two bursts are closer than the interval (except the
    forced last one)."""
    folder = DiscardFolder(interval_s=1.0)
    now, bursts, out_at = 0.0, 0, []
    for gap in gaps:
        deadline = folder.deadline()
        now += gap
        if deadline is not None and now >= deadline:
            burst = folder.flush(deadline)
            assert burst is not None
            bursts += burst.count
            out_at.append(deadline)
        burst = folder.add(GARBAGE, now)
        if burst is not None:
            bursts += burst.count
            out_at.append(now)
    last = folder.flush(now, force=True)
    bursts += last.count if last is not None else 0
    assert bursts == len(gaps)
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(out_at))
