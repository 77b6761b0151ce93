"""Timestamps that only move forward: packet times in the file and wall times in the index.

Two corrections, both per camera:

- `Continuity` (per connection) turns the camera's decode timestamps into a strictly increasing series: a
  timestamp that goes backwards or jumps forward by more than `jump_s` (a camera clock step, an RTP timestamp
  reset) continues one frame after the previous one instead, so the file never holds a jump.
- `Timeline` (per camera, across connections and agent restarts) maps stream time to wall time. It anchors at
  the agent's wall clock when a connection's first packet arrives, but never before the end of what was
  already recorded (so a clock stepped back cannot make segments overlap), and re-anchors on the agent's
  monotonic clock when stream time and monotonic time part by more than `max_drift_s` (a camera whose clock
  runs fast or slow).
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
    wall: datetime
    dts: int
    monotonic: float


class Timeline:
    """Wall times of one camera's media, never going backwards; see the module docstring."""

    def __init__(self, last_end: datetime | None = None, *, max_drift_s: float = 1.0) -> None:
        self.last_end = last_end
        self.max_drift_s = max_drift_s
        self.reanchors = 0
        self._anchor: Anchor | None = None
        self._time_base = Fraction(1, 90_000)

    def connect(self, time_base: Fraction) -> None:
        """A new connection: the next packet anchors the timeline afresh."""
        self._anchor = None
        self._time_base = time_base

    @property
    def anchored(self) -> bool:
        return self._anchor is not None

    def wall(self, dts: int, now: datetime, monotonic: float) -> datetime:
        """The wall time of the packet with (corrected) timestamp `dts`, received at `now` / `monotonic`."""
        if self._anchor is None:
            self._anchor = Anchor(self._not_before(now), dts, monotonic)
            return self._anchor.wall
        return self._at(self._anchor, dts)

    def check_drift(self, dts: int, monotonic: float) -> bool:
        """At a segment boundary: re-anchor if stream time and monotonic time have parted; True if it did."""
        anchor = self._anchor
        if anchor is None:
            return False
        stream_s = float((dts - anchor.dts) * self._time_base)
        elapsed_s = monotonic - anchor.monotonic
        if abs(stream_s - elapsed_s) <= self.max_drift_s:
            return False
        wall = self._not_before(anchor.wall + timedelta(seconds=elapsed_s))
        self._anchor = Anchor(wall, dts, monotonic)
        self.reanchors += 1
        return True

    def written(self, end: datetime) -> None:
        """Media up to `end` is on disk: nothing later may start before it."""
        if self.last_end is None or end > self.last_end:
            self.last_end = end

    def _at(self, anchor: Anchor, dts: int) -> datetime:
        return anchor.wall + timedelta(seconds=float((dts - anchor.dts) * self._time_base))

    def _not_before(self, when: datetime) -> datetime:
        if self.last_end is not None and when < self.last_end:
            return self.last_end
        return when
