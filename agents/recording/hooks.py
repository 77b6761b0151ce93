"""The recorder's hooks for the other parts of the agent (image health, retention and the disk policy).

- `on_keyframe(camera, keyframe)`: called for every keyframe that is written (in the event loop for RTSP over
  TCP, in the session thread for UDP); it must return at once (keep the bytes, work elsewhere) and must not
  raise.
- `before_segment(camera)`: awaited on the event loop before each new segment file is opened (space is freed
  there).
- `on_write_error(camera, exc)`: awaited when writing a segment failed (ENOSPC, EIO, ...); the recorder then
  closes what it can, waits its backoff and opens a new segment, never crashing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Keyframe:
    """One keyframe as a decoder needs it on its own."""

    codec: str
    """FFmpeg's decoder name: h264 or hevc."""
    extradata: bytes
    """The stream's decoder configuration (avcC/hvcC record), or empty when the data carries it (Annex B)."""
    data: bytes
    """The access unit, as written to the file."""


KeyframeHook = Callable[[str, Keyframe], None]
BeforeSegmentHook = Callable[[str], Awaitable[None]]
WriteErrorHook = Callable[[str, BaseException], Awaitable[None]]
