"""The recorder's hooks for the other parts of the agent (image health, retention and the disk policy).

- `on_keyframe(camera, packet, stream)`: called in the camera's session thread for every keyframe that is
  written; it must return at once (copy what it needs, work elsewhere) and must not raise.
- `before_segment(camera)`: awaited on the event loop before each new segment file is opened (space is freed
  there); the session thread waits for it.
- `on_write_error(camera, exc)`: awaited when writing a segment failed (ENOSPC, EIO, ...); the recorder then
  closes what it can, waits its backoff and opens a new segment, never crashing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

KeyframeHook = Callable[[str, Any, Any], None]
"""(camera, av.Packet, av.video.stream.VideoStream) -> None."""
BeforeSegmentHook = Callable[[str], Awaitable[None]]
WriteErrorHook = Callable[[str, BaseException], Awaitable[None]]
