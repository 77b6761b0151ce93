"""Rate limits shared by every part, on an injected clock so tests move time instead of sleeping.

- `WindowLimiter`: at most N events per sliding window per key (client address: sign-in, enrolment, the media
  node's token endpoints), bounded in memory.
- `TokenBucket`: a steady rate with a burst, for one connection (the agent uplink, a meeting's signalling
  WebSocket): a flood is refused message by message without touching anyone else.
"""

from __future__ import annotations

import collections

from common.clock import Clock


class WindowLimiter:
    """At most `limit` events per `window_s` seconds per key; keeps at most `max_keys` keys (oldest dropped)."""

    def __init__(self, clock: Clock, limit: int, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window_s
        self._max_keys = max_keys
        self._events: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def allow(self, key: str) -> bool:
        """Count one event for `key`; False when it is over the limit (the event is not counted then)."""
        now = self._clock.monotonic()
        events = self._events.get(key)
        if events is None:
            events = collections.deque()
            self._events[key] = events
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        while events and events[0] <= now - self._window:
            events.popleft()
        if len(events) >= self._limit:
            return False
        events.append(now)
        return True


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take()` is False (nothing spent) when the bucket is empty."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least one")
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = clock.monotonic()

    def take(self) -> bool:
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
