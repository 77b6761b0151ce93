"""One segment file being written: packets remuxed (never decoded) into fragmented MP4.

The muxer cuts a fragment at every keyframe and at least every `fragment_s` (`frag_keyframe` + `frag_duration`),
with an empty `moov` up front (`empty_moov`), so every fragment written is playable on its own once on disk;
`flush_packets` hands each fragment to the kernel as soon as the muxer emits it, which bounds what a kill -9
loses to the open fragment. For power loss the file is fsynced once per `fragment_s` (and at close).
"""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

MUXER_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "flush_packets": "1",
}


class SegmentWriter:
    """Writes packets of one video stream into `path`; timestamps rebased so the file starts at 0."""

    def __init__(self, path: Path, template: Any, *, fragment_s: float, fsync: bool = True) -> None:
        self.path = path
        self._fsync = fsync
        self._fragment_s = fragment_s
        options = dict(MUXER_OPTIONS, frag_duration=str(int(fragment_s * 1_000_000)))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created here (the muxer creates it only at its first write), kept open for fsync.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        try:
            self._container: Any = av.open(str(path), "w", format="mp4", options=options)
        except BaseException:
            os.close(self._fd)
            raise
        try:
            self._stream: Any = self._container.add_stream_from_template(template)
        except BaseException:
            self._container.close()
            os.close(self._fd)
            raise
        self.time_base: Fraction = template.time_base
        self._seconds_per_tick = float(self.time_base)  # float arithmetic per packet: Fraction is slow
        self.first_dts: int | None = None
        self.last_dts: int | None = None
        self.last_duration = 0
        self.packets = 0
        self._synced_at = time.monotonic()

    def write(self, packet: Any, dts: int, pts: int) -> None:
        """Write `packet` with corrected timestamps `dts`/`pts` (stream time base)."""
        if self.first_dts is None:
            self.first_dts = dts
        packet.dts = dts - self.first_dts
        packet.pts = max(pts - self.first_dts, packet.dts)
        packet.stream = self._stream
        self._container.mux_one(packet)
        self.last_dts = dts
        self.last_duration = int(packet.duration or 0)
        self.packets += 1
        if self._fsync and time.monotonic() - self._synced_at >= self._fragment_s:
            os.fdatasync(self._fd)  # the data and the size; not the times
            self._synced_at = time.monotonic()

    def size(self) -> int:
        """Bytes on disk so far (whole fragments, and any part of one being written)."""
        return os.fstat(self._fd).st_size if self._fd >= 0 else 0

    @property
    def duration_s(self) -> float:
        """Media seconds written so far (the last packet's duration included)."""
        if self.first_dts is None or self.last_dts is None:
            return 0.0
        return (self.last_dts + self.last_duration - self.first_dts) * self._seconds_per_tick

    def close(self) -> int:
        """Finish the file (trailer), fsync it, and return its size in bytes. Safe to call twice."""
        container, self._container = self._container, None
        try:
            if container is not None:
                container.close()
        finally:
            if self._fd >= 0:
                try:
                    if self._fsync:
                        os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = -1
        return self.path.stat().st_size

    def abandon(self) -> None:
        """Close without caring for errors (after a failed write); the file is repaired by the caller."""
        try:
            self.close()
        except (OSError, av.error.FFmpegError, ValueError):
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
