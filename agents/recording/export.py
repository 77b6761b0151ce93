"""A clip for a time range as one MP4, remuxed (never transcoded) from the segments that cover it.

The clip starts on the last keyframe at or before `start` (so its first frame decodes), and ends at the first
packet at or after `end`. Packets keep their place in time: a packet's clip time is its segment's start plus
its offset in the segment, minus the clip's start, so a gap between segments stays a gap (the player holds the
last frame) and segments never overlap. Segments whose codec or picture size differ from the first one's (a
camera reconfigured between them) end the clip there. The output is a regular MP4 with its index up front
(`faststart`), written to a temporary file that the caller streams and removes.

Only finished segments are exported: the segment being recorded is still growing and its last fragment may be
half written, so it is left out, and the clip says so (`Clip.unfinished`, and the API's `X-Clip-Unfinished`
header and error text): asked again once that segment is finished (at most a segment length later), the clip
covers it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from agents.recording.index import Segment
from agents.recording.paths import PathRefused, resolve_segment

logger = logging.getLogger(__name__)


UNFINISHED_SLACK = timedelta(seconds=2)


class ExportError(Exception):
    """Nothing to export (no recording in the range), or a segment could not be read."""


@dataclass(frozen=True)
class Clip:
    path: Path
    start: datetime
    """Wall time of the clip's first frame (a keyframe at or before the requested start)."""
    duration_s: float
    packets: int
    segments: int
    unfinished: int = 0
    """Segments in the range that were left out because they are still being recorded."""

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)


def export_clip(root: Path, segments: Sequence[Segment], start: datetime, end: datetime, out: Path) -> Clip:
    """Write the clip for [start, end) of `segments` (one camera's, by start time) into `out`. Blocking."""
    chosen = [s for s in segments if s.complete and s.end > start and s.start < end]
    # The open segment's row trails its file by up to a second (the recorder updates it once a second).
    unfinished = [s for s in segments if not s.complete and s.end + UNFINISHED_SLACK > start and s.start < end]
    if not chosen:
        if unfinished:
            raise ExportError(
                f"no finished recording in this range yet: the segment being recorded (from "
                f"{unfinished[0].start.isoformat()}) is exported once it is finished"
            )
        raise ExportError("no recording in this range")
    output: Any = None
    out_stream: Any = None
    template_key: tuple[str, int, int] | None = None
    clip_start: datetime | None = None
    time_base: Fraction | None = None
    last_dts: int | None = None
    last_duration = 0
    packets = used = 0
    try:
        for segment in chosen:
            try:
                path = resolve_segment(root, segment.path)
            except PathRefused as exc:
                raise ExportError(f"segment {segment.id} cannot be read: {exc}") from None
            with av.open(str(path), "r") as source:
                if not source.streams.video:
                    continue
                stream = source.streams.video[0]
                codec = stream.codec_context
                key = (str(codec.name), int(codec.width), int(codec.height))
                if template_key is not None and key != template_key:
                    logger.info("export: segment %d has another codec or size; the clip ends before it", segment.id)
                    break
                tb: Fraction = stream.time_base or Fraction(1, 90_000)
                buffered: list[Any] = []
                first_dts: int | None = None
                started = clip_start is not None
                for packet in source.demux(stream):
                    if packet.dts is None:
                        continue
                    if first_dts is None:
                        first_dts = packet.dts
                    wall = segment.start + timedelta(seconds=float((packet.dts - first_dts) * tb))
                    if wall >= end:
                        break
                    if not started:
                        if packet.is_keyframe:
                            buffered = []
                        if not buffered and not packet.is_keyframe:
                            continue
                        buffered.append((packet, wall))
                        if wall < start:
                            continue
                        started = True
                        pending = buffered
                    else:
                        pending = [(packet, wall)]
                    for item, item_wall in pending:
                        if output is None:
                            output = av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"})
                            out_stream = output.add_stream_from_template(stream)
                            template_key = key
                            time_base = tb
                            clip_start = item_wall
                        assert clip_start is not None and time_base is not None
                        offset = round((item_wall - clip_start).total_seconds() / time_base)
                        dts = offset if last_dts is None else max(offset, last_dts + 1)
                        item.pts = dts + max(0, (item.pts or item.dts) - item.dts)
                        item.dts = dts
                        item.stream = out_stream
                        output.mux_one(item)
                        last_dts, last_duration = dts, int(item.duration or 0)
                        packets += 1
                used += 1
    except av.error.FFmpegError as exc:
        raise ExportError(f"a segment could not be read: {exc}") from None
    finally:
        if output is not None:
            output.close()
    if clip_start is None or time_base is None or last_dts is None:
        out.unlink(missing_ok=True)
        raise ExportError("no recording in this range")
    duration = float((last_dts + last_duration) * time_base)
    return Clip(out, clip_start, duration, packets, used, len(unfinished))
