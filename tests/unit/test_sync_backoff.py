"""Retry delays for the sync client: exponential growth, a cap, full jitter, reset."""

from __future__ import annotations

import random

import pytest

from suishen.sync.backoff import Backoff


def test_ceiling_doubles_from_initial_up_to_the_cap() -> None:
    """The upper bound after n failures is initial * 2**(n-1), never above the cap."""
    backoff = Backoff(0.5, 30.0, uniform=lambda _low, high: high)
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert backoff.failures == 10


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    """Delays are drawn from [0, ceiling]: over many draws at the cap they cover the range
    (min near 0, max near the cap, mean near half of it)."""
    rng = random.Random(7)
    backoff = Backoff(1.0, 8.0, uniform=rng.uniform)
    for _ in range(4):
        backoff.next_delay()
    draws = [backoff.next_delay() for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 0.1
    assert max(draws) > 7.9
    assert 3.6 < sum(draws) / len(draws) < 4.4


def test_reset_starts_again_from_initial_and_huge_counts_stay_finite() -> None:
    """After reset() the first delay is bounded by initial again; thousands of failures do
    not overflow."""
    backoff = Backoff(0.25, 60.0, uniform=lambda _low, high: high)
    for _ in range(5000):
        assert backoff.next_delay() <= 60.0
    backoff.reset()
    assert backoff.next_delay() == 0.25


def test_invalid_bounds_are_refused() -> None:
    """initial must be positive and not above the cap."""
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(0, 1)
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(2, 1)
