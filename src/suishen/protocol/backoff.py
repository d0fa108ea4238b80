"""Retry delays: exponential backoff with jitter (sans-I/O: no clock, no sleeping).

One Backoff for every retry loop: the drivers' reconnect loops and the sync workers (uploader,
bundle fetcher). After ``n`` failures the delay is drawn below a ceiling that grows from
``initial_s`` by ``factor`` per failure up to ``cap_s``::

    ceiling(n) = min(cap_s, initial_s * factor ** (n - 1))     (n >= 1; ceiling(0) = initial_s)

and the jitter says where below it:

- ``Jitter.FULL``: ``uniform(0, ceiling)`` (the AWS architecture note's "full jitter"): many
  gateways that lost the hub at the same moment do not all come back at the same moment (sync);
- ``Jitter.EQUAL``: ``uniform(ceiling / 2, ceiling)``: a retry never comes at once, so a
  reconnect loop does not spin against a device that just went away (drivers).

``next_delay()`` counts a failure and returns how long to wait; ``reset()`` after a success.
The caller sleeps (or schedules); the random source is injectable so tests can pin it.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable

__all__ = ["Backoff", "Jitter"]

Uniform = Callable[[float, float], float]  # (low, high) -> a value in [low, high]


class Jitter(enum.Enum):
    FULL = "full"  # uniform(0, ceiling)
    EQUAL = "equal"  # uniform(ceiling / 2, ceiling)


_SYSTEM_RANDOM = random.SystemRandom()


class Backoff:
    """Exponential backoff: ``next_delay()`` after each failure, ``reset()`` after a success."""

    __slots__ = ("_uniform", "cap_s", "factor", "failures", "initial_s", "jitter")

    def __init__(
        self,
        *,
        initial_s: float,
        cap_s: float,
        factor: float = 2.0,
        jitter: Jitter = Jitter.FULL,
        uniform: Uniform | None = None,
    ) -> None:
        if not (0 < initial_s <= cap_s) or not math.isfinite(cap_s):
            raise ValueError("need 0 < initial_s <= cap_s (finite)")
        if not (1.0 <= factor < math.inf):
            raise ValueError("need 1 <= factor (finite)")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.factor = factor
        self.jitter = jitter
        self.failures = 0
        self._uniform: Uniform = uniform if uniform is not None else _SYSTEM_RANDOM.uniform

    def ceiling(self, failures: int | None = None) -> float:
        """The upper bound of the delay after ``failures`` failures (default: the current)."""
        n = self.failures if failures is None else failures
        steps = max(n - 1, 0)
        if steps == 0 or self.factor == 1.0:
            return self.initial_s
        # Past the step where the cap wins, do not compute factor**steps (it would overflow).
        if steps * math.log(self.factor) >= math.log(self.cap_s / self.initial_s):
            return self.cap_s
        return min(self.cap_s, self.initial_s * self.factor**steps)

    def next_delay(self) -> float:
        """Count one more failure and return the delay to wait before the next attempt."""
        self.failures += 1
        high = self.ceiling()
        low = 0.0 if self.jitter is Jitter.FULL else high / 2
        return self._uniform(low, high)

    def reset(self) -> None:
        """A success: the next failure starts again from ``initial_s``."""
        self.failures = 0
