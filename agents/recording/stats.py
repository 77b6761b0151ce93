"""What a recorder reports about itself: its state and counters, read by /metrics at scrape time."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass


class RecorderState(enum.StrEnum):
    """Where one camera's recorder stands."""

    STARTING = "starting"
    """Connecting for the first time."""
    RECORDING = "recording"
    """Packets are arriving and being written."""
    STALLED = "stalled"
    """The connection stayed open but no packet came within the stall timeout; about to reconnect."""
    RECONNECTING = "reconnecting"
    """The stream ended or failed; waiting for the backoff delay, then connecting again."""
    STOPPED = "stopped"
    """The recorder was stopped (camera gone or agent stopping)."""


@dataclass
class RecorderStats:
    """One camera's figures since the agent started. Written by its session thread, read anywhere."""

    camera: str
    state: RecorderState = RecorderState.STARTING
    frames_total: int = 0
    bytes_total: int = 0
    keyframes_total: int = 0
    last_packet_monotonic: float | None = None
    fps: float | None = None
    """Frames per second over the last few seconds."""
    bitrate_bps: float | None = None
    """Bits per second over the last few seconds."""
    keyframe_interval_s: float | None = None
    """Seconds between the latest two keyframes (stream time)."""
    reconnects_total: int = 0
    gaps_total: int = 0
    gap_seconds_total: float = 0.0
    segments_total: int = 0
    """Segments finished (closed and indexed as complete)."""
    write_errors_total: int = 0
    stalls_total: int = 0
    written_end_wall: float | None = None
    """POSIX time (on the recording's timeline) of the end of the media last written to a segment file."""

    @property
    def recording_lag_s(self) -> float | None:
        """Wall time now minus the end of the media last written (None before the first write): about one
        fragment while recording, growing while the camera is down."""
        if self.written_end_wall is None:
            return None
        return max(0.0, time.time() - self.written_end_wall)


RATE_WINDOW_S = 2.0
"""fps and bitrate are measured over windows of this many seconds."""


class FrameMeter:
    """Counts one session's frames into its camera's stats: totals, the last arrival, and fps and bitrate over
    windows of RATE_WINDOW_S. The native and the PyAV session each keep one and call `count` once per frame.

    A window runs from one frame's arrival to a later one's and holds the frames after its start up to and
    including its end (n frame intervals over their span), so a steady 25 fps reads 25, not 25.5."""

    __slots__ = ("_window_at", "_window_bytes", "_window_frames", "frames", "stats")

    def __init__(self, stats: RecorderStats) -> None:
        self.stats = stats
        self.frames = 0
        """Frames of this session (the stats' totals run across sessions)."""
        self._window_at = 0.0
        self._window_frames = 0
        self._window_bytes = 0

    def count(self, size: int, key: bool, now: float) -> None:
        """One frame of `size` bytes that arrived at `now` (monotonic seconds)."""
        stats = self.stats
        stats.frames_total += 1
        stats.bytes_total += size
        if key:
            stats.keyframes_total += 1
        stats.last_packet_monotonic = now
        self.frames += 1
        if not self._window_at:  # the first frame opens the window: the frames after it fill its span
            self._window_at = now
            return
        self._window_frames += 1
        self._window_bytes += size
        if now - self._window_at >= RATE_WINDOW_S:
            elapsed = now - self._window_at
            stats.fps = self._window_frames / elapsed
            stats.bitrate_bps = self._window_bytes * 8 / elapsed
            self._window_at, self._window_frames, self._window_bytes = now, 0, 0
