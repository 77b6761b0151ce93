"""Fragmented MP4 (ISO/IEC 14496-12) written by hand: one header per segment file, one `moof`+`mdat` per fragment.

The recorder builds each fragment's boxes from the frames it already holds (sizes, durations, keyframe flags)
and writes the fragment with one system call, so the cost per frame is a few list appends, not a library call.
The layout is what FFmpeg writes with `frag_keyframe+empty_moov+default_base_moof`: `ftyp`, a `moov` without
samples (its `mvex` announces fragments), then fragments whose `tfhd` says offsets count from the `moof` and
whose `tfdt` gives the decode time of the first sample, so each fragment stands on its own after a crash.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

from agents.recording.h26x import VideoFormat

TIMESCALE = 90_000
"""Media time units per second: the RTP clock of H.264 and H.265."""
_KEY_FLAGS = 0x02000000  # sample_depends_on = 2 (an I picture)
_DELTA_FLAGS = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample
_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400  # data offset, durations, sizes, flags per sample


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def init_segment(video: VideoFormat) -> bytes:
    """`ftyp` and `moov` for one video track of `video`, time scale 90 kHz."""
    ftyp = box(b"ftyp", b"iso5", struct.pack(">I", 512), b"iso5iso6mp41")
    mvhd = full_box(
        b"mvhd", 0, 0, struct.pack(">IIIIIH10x", 0, 0, 1000, 0, 0x00010000, 0x0100), _MATRIX, bytes(24), b"\0\0\0\2"
    )
    tkhd = full_box(
        b"tkhd", 0, 3, struct.pack(">IIIII8xhhh2x", 0, 0, 1, 0, 0, 0, 0, 0), _MATRIX,
        struct.pack(">II", video.width << 16, video.height << 16),
    )  # fmt: skip
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"vide"), b"VideoHandler\0")
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    entry = box(
        video.sample_entry,
        bytes(6), struct.pack(">H", 1), bytes(16),
        struct.pack(">HHIIIH", video.width, video.height, 0x00480000, 0x00480000, 0, 1),
        bytes(32), struct.pack(">Hh", 0x18, -1),
        box(video.config_box, video.config),
    )  # fmt: skip
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    trak = box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", vmhd, dinf, stbl)))
    mvex = box(b"mvex", full_box(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0)))
    return ftyp + box(b"moov", mvhd, trak, mvex)


@lru_cache(maxsize=256)
def _samples(count: int) -> struct.Struct:
    return struct.Struct(">" + "III" * count)


def fragment_header(sequence: int, decode_time: int, durations: Sequence[int], sizes: Sequence[int],
                    keys: Sequence[bool]) -> bytes:  # fmt: skip
    """`moof` (one track) and the `mdat` header for samples of these durations, sizes and keyframe flags; the
    samples' bytes follow it in the file, in order."""
    count = len(sizes)
    table: list[int] = []
    for duration, size, key in zip(durations, sizes, keys, strict=True):
        table += (duration, size, _KEY_FLAGS if key else _DELTA_FLAGS)
    trun_size = 12 + 8 + 12 * count
    traf_size = 8 + 16 + 20 + trun_size
    moof_size = 8 + 16 + traf_size
    head = struct.pack(
        ">I4sI4sIII4sI4sIII4sIQI4sIIi",
        moof_size, b"moof",
        16, b"mfhd", 0, sequence,
        traf_size, b"traf",
        16, b"tfhd", 0x020000, 1,
        20, b"tfdt", 1 << 24, decode_time,
        trun_size, b"trun", _TRUN_FLAGS, count, moof_size + 8,
    )  # fmt: skip
    return head + _samples(count).pack(*table) + struct.pack(">I4s", 8 + sum(sizes), b"mdat")
