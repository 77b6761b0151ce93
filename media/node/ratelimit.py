"""A per-address limit on the token endpoints (WHIP, WHEP): a sliding window, bounded in memory.

The media node does not import the controller (parts share only `protocol/` and `common/`), so this is its own
small limiter, with the clock injected so tests move time instead of sleeping.
"""

from __future__ import annotations

import collections

from common.clock import Clock


class AddressLimiter:
    """At most `limit` requests per `window_s` per address; remembers at most `max_keys` addresses (LRU)."""

    def __init__(self, clock: Clock, limit: int, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window_s
        self._max_keys = max_keys
        self._events: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def allow(self, address: str) -> bool:
        """Count one request; False (not counted) when `address` is over its limit."""
        now = self._clock.monotonic()
        events = self._events.get(address)
        if events is None:
            events = self._events[address] = collections.deque()
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(address)
        while events and events[0] <= now - self._window:
            events.popleft()
        if len(events) >= self._limit:
            return False
        events.append(now)
        return True
