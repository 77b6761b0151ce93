"""Timestamps that only move forward: packet times in the file and wall times in the index.

Two corrections, both per camera:

- `Continuity` (per connection) turns the camera's decode timestamps into a strictly increasing series: a
  timestamp that goes backwards or jumps forward by more than `jump_s` (a camera clock step, an RTP timestamp
  reset) continues one frame after the previous one instead, so the file never holds a jump.
- `Timeline` (per camera, across connections and agent restarts) gives each segment its wall times. A
  connection reads the agent's wall clock once, at its start, and measures everything after on the monotonic
  clock (a clock step during a connection changes nothing). A segment's start is the earliest moment that
  agrees with every packet of it: min over its packets of (arrival - offset in the segment), since no packet
  arrives before it was captured; this discounts the burst of buffered frames a camera sends after PLAY. The
  end is the start plus the media duration. A segment never starts before the previous one ended (a clock
  stepped back, or frames sent again after a reconnect, cannot make segments overlap), and within one
  connection a segment that would start less than `max_drift_s` after the previous end starts right at it
  (network jitter is not a gap); a camera clock running slow by more than that shows as a `clock_drift` gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction


@dataclass
class Continuity:
    """Strictly increasing decode timestamps for one connection, in the stream's time base."""

    time_base: Fraction
    jump_s: float = 10.0
    previous: int | None = None
    offset: int = 0
    step: int = 0
    """The latest frame duration seen (time-base units), used to continue after a jump."""
    jumps: int = 0

    def __post_init__(self) -> None:
        self._jump = max(1, int(self.jump_s / self.time_base))
        self.step = max(1, int(Fraction(1, 25) / self.time_base))

    def next(self, dts: int, duration: int | None = None) -> int:
        """The corrected timestamp of a packet whose timestamp is `dts`."""
        value = dts + self.offset
        if self.previous is not None:
            delta = value - self.previous
            if delta <= 0 or delta > self._jump:
                self.jumps += 1
                step = duration if duration else self.step
                self.offset += self.previous + step - value
                value = self.previous + step
            else:
                self.step = delta
        self.previous = value
        return value


@dataclass
class Anchor:
    """Wall time at a connection's start and the monotonic time it was read at."""

    wall: datetime
    monotonic: float


class Timeline:
    """Wall times of one camera's segments, never going backwards; see the module docstring."""

    def __init__(self, last_end: datetime | None = None, *, max_drift_s: float = 1.0) -> None:
        self.last_end = last_end
        self.max_drift_s = max_drift_s
        self.drift_gaps = 0
        self._anchor: Anchor | None = None
        self._time_base = 1 / 90_000
        self._segment_first: int | None = None
        self._segment_origin = float("inf")
        self._segments_in_connection = 0

    def connect(self, time_base: Fraction, now: datetime, monotonic: float) -> None:
        """A new connection, read at `now` (wall) / `monotonic`."""
        self._anchor = Anchor(now, monotonic)
        self._time_base = float(time_base)
        self._segment_first = None
        self._segments_in_connection = 0

    def _wall(self, monotonic: float) -> datetime:
        assert self._anchor is not None
        return self._anchor.wall + timedelta(seconds=monotonic - self._anchor.monotonic)

    def begin_segment(self, dts: int, monotonic: float) -> datetime:
        """A segment starts with the packet `dts` that arrived at `monotonic`; its provisional start."""
        self._segment_first = dts
        self._segment_origin = monotonic
        return self._not_before(self._wall(monotonic))

    def observe(self, dts: int, monotonic: float) -> None:
        """A packet of the open segment arrived at `monotonic`."""
        if self._segment_first is not None:
            origin = monotonic - (dts - self._segment_first) * self._time_base
            if origin < self._segment_origin:
                self._segment_origin = origin

    def estimate_start(self) -> tuple[datetime, timedelta]:
        """The open segment's start as known now (what `finish_segment` would say), and the hole before it."""
        start = self._not_before(self._wall(self._segment_origin))
        hole = timedelta(0)
        if self.last_end is not None and self._segments_in_connection and start > self.last_end:
            if start - self.last_end < timedelta(seconds=self.max_drift_s):
                start = self.last_end
            else:
                hole = start - self.last_end
        return start, hole

    def finish_segment(self, duration_s: float) -> tuple[datetime, datetime, timedelta]:
        """The open segment's final (start, end), and the unexplained hole before it within this connection."""
        start, hole = self.estimate_start()
        if hole:
            self.drift_gaps += 1
        end = start + timedelta(seconds=duration_s)
        self._segments_in_connection += 1
        self._segment_first = None
        self.written(end)
        return start, end, hole

    def written(self, end: datetime) -> None:
        """Media up to `end` is on disk: nothing later may start before it."""
        if self.last_end is None or end > self.last_end:
            self.last_end = end

    def _not_before(self, when: datetime) -> datetime:
        if self.last_end is not None and when < self.last_end:
            return self.last_end
        return when
