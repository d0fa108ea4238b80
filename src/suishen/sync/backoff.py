"""Retry delays: exponential backoff with full jitter (sans-I/O: no clock, no sleeping).

``delay = uniform(0, min(cap, initial * 2**failures))`` ("full jitter", as in the AWS
architecture note on backoff): many gateways that lost the hub at the same moment do not all
come back at the same moment.  ``next_delay()`` counts a failure and returns how long to wait;
``reset()`` after a success.  The random source is injectable so tests can pin it.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Exponential backoff with full jitter between 0 and ``min(cap, initial * 2**n)``."""

    def __init__(
        self,
        initial_s: float,
        cap_s: float,
        *,
        uniform: Callable[[float, float], float] | None = None,
    ) -> None:
        if initial_s <= 0 or cap_s < initial_s:
            raise ValueError("need 0 < initial_s <= cap_s")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.failures = 0
        self._uniform = uniform if uniform is not None else random.SystemRandom().uniform

    def ceiling(self, failures: int | None = None) -> float:
        """The upper bound of the delay after ``failures`` failures (default: the current)."""
        n = self.failures if failures is None else failures
        # 2**n overflows nothing in Python, but keep the float small: the cap wins early.
        return min(self.cap_s, self.initial_s * 2.0 ** min(max(n - 1, 0), 62))

    def next_delay(self) -> float:
        """Count one more failure and return the delay to wait before the next attempt."""
        self.failures += 1
        return self._uniform(0.0, self.ceiling())

    def reset(self) -> None:
        self.failures = 0
