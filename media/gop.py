"""The frames since the last keyframe, so a new subscriber starts at once instead of waiting for the next one.

Without it a viewer of a camera with a 2 s keyframe interval waits about 1 s on average (the camera cannot make
a keyframe on request); with it the first decoded frame came after 39 ms in the prototype. The cache is bounded
in frames and bytes: past either bound it is dropped until the next keyframe, and joiners fall back to waiting
for a keyframe (after asking the publisher for one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded frame of a source, as the forwarder passes it to its sinks."""

    data: bytes
    timestamp: int
    """RTP clock units, unwrapped, from the source's first frame."""
    keyframe: bool


class GopCache:
    """The last keyframe and the frames after it, while they fit."""

    def __init__(self, max_frames: int = 250, max_bytes: int = 4 * 1024 * 1024) -> None:
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._frames: list[Frame] = []
        self._bytes = 0
        self._valid = False

    def add(self, frame: Frame) -> None:
        if frame.keyframe:
            self._frames = [frame]
            self._bytes = len(frame.data)
            self._valid = True
            return
        if not self._valid:
            return
        if len(self._frames) >= self._max_frames or self._bytes + len(frame.data) > self._max_bytes:
            self.invalidate()
            return
        self._frames.append(frame)
        self._bytes += len(frame.data)

    def invalidate(self) -> None:
        """Frames were lost or the cache overflowed: nothing in it can be used until the next keyframe."""
        self._frames = []
        self._bytes = 0
        self._valid = False

    @property
    def valid(self) -> bool:
        return self._valid

    def frames(self) -> list[Frame]:
        """A copy of the cached frames, keyframe first (empty when not valid)."""
        return list(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def byte_size(self) -> int:
        return self._bytes
