"""protocol.backoff: the one retry delay of the sync workers (full jitter) and the drivers'
reconnect loops (equal jitter): exponential growth, a cap, jitter, reset."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.drivers.base import reconnect_backoff
from suishen.protocol.backoff import Backoff, Jitter


def test_ceiling_doubles_from_initial_up_to_the_cap() -> None:
    """The upper bound after n failures is initial * 2**(n-1), never above the cap."""
    backoff = Backoff(initial_s=0.5, cap_s=30.0, uniform=lambda _low, high: high)
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert backoff.failures == 10


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    """Delays are drawn from [0, ceiling]: over many draws at the cap they cover the range
    (min near 0, max near the cap, mean near half of it)."""
    rng = random.Random(7)
    backoff = Backoff(initial_s=1.0, cap_s=8.0, uniform=rng.uniform)
    for _ in range(4):
        backoff.next_delay()
    draws = [backoff.next_delay() for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 0.1
    assert max(draws) > 7.9
    assert 3.6 < sum(draws) / len(draws) < 4.4


def test_equal_jitter_spans_half_the_ceiling_to_the_ceiling() -> None:
    """Equal jitter (the reconnect loops') draws from [ceiling/2, ceiling]: a retry never
    comes at once."""
    rng = random.Random(11)
    backoff = Backoff(initial_s=1.0, cap_s=8.0, jitter=Jitter.EQUAL, uniform=rng.uniform)
    for _ in range(4):
        backoff.next_delay()
    draws = [backoff.next_delay() for _ in range(2000)]
    assert all(4.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 4.1
    assert max(draws) > 7.9


def test_the_bounds_handed_to_the_random_source() -> None:
    """next_delay() asks the injected random source for exactly (low, ceiling)."""
    asked: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        asked.append((low, high))
        return low

    full = Backoff(initial_s=0.1, cap_s=1.0, uniform=uniform)
    equal = Backoff(initial_s=0.1, cap_s=1.0, factor=3.0, jitter=Jitter.EQUAL, uniform=uniform)
    for _ in range(3):
        full.next_delay()
        equal.next_delay()
    flat = [bound for pair in asked for bound in pair]
    expected = [(0.0, 0.1), (0.05, 0.1), (0.0, 0.2), (0.15, 0.3), (0.0, 0.4), (0.45, 0.9)]
    assert flat == pytest.approx([bound for pair in expected for bound in pair])


def test_reset_starts_again_from_initial_and_huge_counts_stay_finite() -> None:
    """After reset() the first delay is bounded by initial again; thousands of failures do
    not overflow."""
    backoff = Backoff(initial_s=0.25, cap_s=60.0, uniform=lambda _low, high: high)
    for _ in range(5000):
        assert backoff.next_delay() <= 60.0
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == 0.25


def test_ceiling_of_a_given_failure_count() -> None:
    """ceiling(n) answers for any count without changing the state; ceiling(0) is initial."""
    backoff = Backoff(initial_s=0.5, cap_s=30.0)
    assert [backoff.ceiling(n) for n in (0, 1, 2, 3, 7, 10_000)] == [0.5, 0.5, 1.0, 2.0, 30.0, 30.0]
    assert backoff.failures == 0


def test_invalid_bounds_are_refused() -> None:
    """initial must be positive and not above the cap; the factor at least 1 and finite."""
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=0, cap_s=1)
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=2, cap_s=1)
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=1, cap_s=float("inf"))
    with pytest.raises(ValueError, match="factor"):
        Backoff(initial_s=1, cap_s=2, factor=0.5)
    with pytest.raises(ValueError, match="factor"):
        Backoff(initial_s=1, cap_s=2, factor=float("inf"))


def test_reconnect_backoff_is_the_drivers_old_schedule() -> None:
    """The drivers' reconnect backoff: 0.05 s doubling to 5 s, equal jitter; a cap set below
    the initial delay is raised to it rather than refused (the settings do not cross-check)."""
    backoff = reconnect_backoff()
    assert (backoff.initial_s, backoff.cap_s, backoff.factor) == (0.05, 5.0, 2.0)
    assert backoff.jitter is Jitter.EQUAL
    for _ in range(20):
        assert 2.5 <= backoff.next_delay() <= 5.0 or backoff.failures < 8
    odd = reconnect_backoff(initial_s=2.0, cap_s=0.5)
    assert (odd.initial_s, odd.cap_s) == (2.0, 2.0)
    assert 1.0 <= odd.next_delay() <= 2.0


@given(
    initial_s=st.floats(min_value=1e-4, max_value=100.0),
    extra_s=st.floats(min_value=0.0, max_value=1000.0),
    factor=st.floats(min_value=1.0, max_value=1000.0),
    jitter=st.sampled_from(Jitter),
    failures=st.integers(min_value=0, max_value=100_000),
)
def test_delays_stay_within_the_ceiling_which_never_shrinks(
    initial_s: float, extra_s: float, factor: float, jitter: Jitter, failures: int
) -> None:
    """For any schedule: the ceiling is between initial and cap and never shrinks as failures
    grow; a delay lies in [0, ceiling] (full) or [ceiling/2, ceiling] (equal)."""
    cap_s = initial_s + extra_s
    backoff = Backoff(initial_s=initial_s, cap_s=cap_s, factor=factor, jitter=jitter)
    ceiling = backoff.ceiling(failures)
    assert initial_s <= ceiling <= cap_s
    assert backoff.ceiling(failures + 1) >= ceiling
    backoff.failures = failures
    delay = backoff.next_delay()
    high = backoff.ceiling()
    low = 0.0 if jitter is Jitter.FULL else high / 2
    assert low <= delay <= high
