"""Delivery retry schedule.

``delays[i]`` is the wait in seconds after attempt ``i + 1`` failed, so a schedule
with ``n`` delays allows ``n`` retries and ``n + 1`` attempts in all; after the last
one the delivery is dead. The schedule is the ``KOPPELHUB_DELIVERY_RETRY_SCHEDULE``
setting ("5,30,120").
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["DEFAULT_JITTER", "DEFAULT_RETRY_SCHEDULE", "RetrySchedule"]


def _check_delay(value: float, position: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"retry delay #{position} is not a number: {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"retry delay #{position} must be a finite number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RetrySchedule:
    """Seconds to wait between delivery attempts, with optional jitter.

    ``jitter`` is a fraction: 0.2 spreads each delay uniformly over ±20 % so retries
    of many deliveries that failed together do not arrive together. It defaults to 0
    so the schedule is deterministic unless asked otherwise; ``rng`` can be injected
    (a seeded ``random.Random``) to make jittered delays reproducible in tests.
    """

    delays: tuple[float, ...]
    jitter: float = 0.0
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        delays = tuple(self.delays)
        if not delays:
            raise ValueError("a retry schedule needs at least one delay")
        checked = tuple(_check_delay(d, i) for i, d in enumerate(delays, start=1))
        object.__setattr__(self, "delays", checked)
        if not (0.0 <= self.jitter < 1.0):
            raise ValueError(f"jitter must be a fraction in [0, 1), got {self.jitter!r}")

    @classmethod
    def parse(cls, text: str, *, jitter: float = 0.0, rng: random.Random | None = None) -> RetrySchedule:
        """Parse comma-separated seconds, e.g. ``"5,30,120"`` (spaces allowed).

        Raises ``ValueError`` naming the bad entry for an empty schedule, an empty
        entry, a non-number or a negative number.
        """
        parts = [p.strip() for p in text.split(",")]
        if parts == [""]:
            raise ValueError("retry schedule is empty; give seconds like '5,30,120'")
        delays: list[float] = []
        for position, part in enumerate(parts, start=1):
            if not part:
                raise ValueError(f"retry schedule {text!r} has an empty entry at #{position}")
            try:
                value = float(part)
            except ValueError as e:
                raise ValueError(
                    f"retry schedule entry #{position} is not a number of seconds: {part!r}"
                ) from e
            delays.append(_check_delay(value, position))
        return cls(tuple(delays), jitter=jitter, rng=rng)

    @classmethod
    def of(
        cls, delays: Iterable[float], *, jitter: float = 0.0, rng: random.Random | None = None
    ) -> RetrySchedule:
        """Build from any iterable of seconds (e.g. the parsed settings list)."""
        return cls(tuple(delays), jitter=jitter, rng=rng)

    @property
    def retries(self) -> int:
        """How many retries follow the first attempt."""
        return len(self.delays)

    @property
    def max_attempts(self) -> int:
        """Attempts in all, the first one included."""
        return len(self.delays) + 1

    @property
    def total_seconds(self) -> float:
        """Sum of the (unjittered) delays: how long a delivery can stay undelivered."""
        return sum(self.delays)

    def next_delay(
        self,
        attempts_made: int,
        *,
        retry_after_s: float | None = None,
        floor_s: float = 0.0,
        retry_after_max_s: float | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when none is left (dead).

        ``attempts_made`` counts attempts already made, the failed one included (1 after
        the first failure). ``retry_after_s``, from a 429/503 ``Retry-After``, raises the
        delay to at least that much, but never beyond ``retry_after_max_s`` (default: the
        longest delay of the schedule) so a receiver cannot park a delivery indefinitely.
        ``floor_s`` is a minimum wait (after a 429 or a timeout the sink is struggling, so
        the next try waits at least that long). Neither adds attempts.
        """
        if attempts_made < 1:
            raise ValueError(f"attempts_made must be >= 1, got {attempts_made}")
        if attempts_made > len(self.delays):
            return None
        delay = self.delays[attempts_made - 1]
        if self.jitter:
            rng = self.rng if self.rng is not None else _RNG
            delay *= 1.0 + rng.uniform(-self.jitter, self.jitter)
        if floor_s > 0 and math.isfinite(floor_s):
            delay = max(delay, floor_s)
        if retry_after_s is not None and math.isfinite(retry_after_s):
            cap = max(self.delays) if retry_after_max_s is None else retry_after_max_s
            delay = max(delay, min(retry_after_s, cap))
        return max(delay, 0.0)

    def with_delays(self, delays: Iterable[float]) -> RetrySchedule:
        """The same jitter and generator with other delays (a subscription's own schedule)."""
        return RetrySchedule(tuple(delays), jitter=self.jitter, rng=self.rng)


# Jitter needs spread, not unpredictability, so the non-cryptographic generator is right.
_RNG = random.Random()  # noqa: S311

DEFAULT_JITTER = 0.2

DEFAULT_RETRY_SCHEDULE = RetrySchedule(
    (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0, 86400.0),
    jitter=DEFAULT_JITTER,
)
"""Eleven attempts over about 46.7 hours (5 s, 30 s, 2 m, 10 m, 30 m, 1 h, 3 h, 6 h, 12 h, 24 h),
each delay spread ±20 %."""
