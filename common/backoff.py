"""Retry and backoff in one place: exponential growth with full jitter, capped.

Used by ONVIF calls, RTSP reconnects and the agent uplink, so every reconnect loop behaves alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for successive failures: min(cap, base * factor**n), with full jitter.

    `next_delay()` after each failure, `reset()` after a success. Full jitter (a uniform draw in
    [jitter_floor * d, d]) spreads the reconnects of many agents after a controller restart.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 60.0
    jitter_floor: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base or not 0 <= self.jitter_floor <= 1:
            raise ValueError("backoff needs base > 0, factor >= 1, cap >= base, 0 <= jitter_floor <= 1")

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * self.factor ** min(self.failures, 64))
        self.failures += 1
        return self.rng.uniform(self.jitter_floor * ceiling, ceiling)

    def reset(self) -> None:
        self.failures = 0
