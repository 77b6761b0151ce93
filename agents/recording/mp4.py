"""Reading what a (possibly cut-off) fragmented MP4 segment holds, and cutting it back to its last whole fragment.

A segment file is `ftyp`, `moov` (empty of samples), then `moof`+`mdat` pairs, then `mfra` once closed. A kill
or power loss can leave the last box cut short; `complete_length` walks the top-level boxes and returns the
length up to the end of the last complete fragment (the last `mdat` that follows a `moof`), which is what
`truncate_to_fragments` keeps. `probe` then demuxes the file (no decoding) for its media duration.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import av

logger = logging.getLogger(__name__)

_PROBE_ERRORS: tuple[type[Exception], ...] = (av.error.FFmpegError, OSError, ValueError, IndexError)


def complete_length(path: Path) -> int:
    """Bytes of `path` up to the end of its last complete fragment (0 if it has no header and fragment)."""
    size = path.stat().st_size
    good = 0
    saw_moov = False
    saw_moof = False
    with path.open("rb") as handle:
        offset = 0
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(16)
            box_size, kind = struct.unpack(">I4s", header[:8])
            if box_size == 1:
                if len(header) < 16:
                    break
                box_size = struct.unpack(">Q", header[8:16])[0]
            if box_size < 8 or offset + box_size > size:
                break
            offset += box_size
            if kind == b"moov":
                saw_moov = True
            elif kind == b"moof":
                saw_moof = True
            elif kind == b"mdat" and saw_moov and saw_moof:
                good = offset
                saw_moof = False
            elif kind == b"mfra" and good:
                good = offset
    return good


def truncate_to_fragments(path: Path) -> tuple[int, int]:
    """Cut `path` back to its last complete fragment; (bytes kept, bytes dropped)."""
    size = path.stat().st_size
    keep = complete_length(path)
    if keep < size:
        with path.open("r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    return keep, size - keep


@dataclass(frozen=True)
class Probe:
    """What a segment holds: packets, keyframes, media seconds, whether it starts on a keyframe."""

    packets: int
    keyframes: int
    duration_s: float
    starts_on_keyframe: bool
    codec: str


def probe(path: Path) -> Probe | None:
    """Demux `path` (no decoding); None if it cannot be read or holds no video packet."""
    try:
        with av.open(str(path), "r") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            time_base = stream.time_base
            first: int | None = None
            last: int | None = None
            last_duration = 0
            packets = keyframes = 0
            starts_on_keyframe = False
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue
                if first is None:
                    first = packet.dts
                    starts_on_keyframe = bool(packet.is_keyframe)
                packets += 1
                keyframes += bool(packet.is_keyframe)
                last = packet.dts
                last_duration = packet.duration or 0
            if first is None or last is None or time_base is None:
                return None
            duration = float((last + last_duration - first) * time_base)
            return Probe(packets, keyframes, duration, starts_on_keyframe, str(stream.codec_context.name))
    except _PROBE_ERRORS as exc:
        logger.debug("cannot probe %s: %s", path.name, exc)
        return None
