"""A track that hands aiortc pre-encoded packets, so it packetizes them without decoding or encoding.

aiortc's sender calls `recv()`; when that returns an `av.Packet` instead of a frame, the codec's `pack()` splits
it into RTP payloads as it is (H.264 Annex-B, a VP8 frame, an Opus packet). The packet must carry `pts` and
`time_base` (1/90000 for video, 1/48000 for Opus): without them aiortc's sender task ends with only a logged
warning. Bursts (a GOP cache sent at a start) can be paced to a rate.

The track is fed by `push()` from the event loop (the forwarder, or the agent's RTSP reader), holds at
most `max_packets` (a slow consumer never grows memory: `push()` says False and the caller decides what to drop),
and ends cleanly with `end()`: the pending packets are still sent, then `recv()` raises `MediaStreamError`.
"""

from __future__ import annotations

import asyncio
import collections
import fractions

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK_RATE = 90_000
OPUS_CLOCK_RATE = 48_000


class PacketTrack(MediaStreamTrack):
    """A bounded queue of encoded frames that aiortc sends as they are."""

    def __init__(
        self, kind: str, *, clock_rate: int | None = None, max_packets: int = 256, pace_bps: int | None = None
    ) -> None:
        """`pace_bps`: the highest rate packets leave at when several wait (a GOP cache burst at a start), so a
        burst does not overflow the path's or the subscriber's buffers; None sends them as fast as aiortc can."""
        super().__init__()
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be audio or video, not {kind!r}")
        if max_packets < 1:
            raise ValueError("max_packets must be at least 1")
        self.kind = kind
        rate = clock_rate or (VIDEO_CLOCK_RATE if kind == "video" else OPUS_CLOCK_RATE)
        self._time_base = fractions.Fraction(1, rate)
        self._max = max_packets
        self._pending: collections.deque[tuple[bytes, int]] = collections.deque()
        self._bytes = 0
        self._wakeup: asyncio.Event = asyncio.Event()
        self._ended = False
        self._pace = pace_bps
        self._release_at = 0.0
        self.packets_in = 0
        self.packets_out = 0

    @property
    def pending(self) -> int:
        """Packets waiting for the sender."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    @property
    def accepting(self) -> bool:
        """False once ended or stopped (the sender stopped reading): pushes are refused."""
        return not self._ended and self.readyState == "live"

    def push(self, data: bytes, pts: int) -> bool:
        """Queue one encoded frame with its timestamp in clock-rate units; False if full, ended or stopped."""
        if not self.accepting or len(self._pending) >= self._max:
            return False
        self._pending.append((data, pts))
        self._bytes += len(data)
        self.packets_in += 1
        self._wakeup.set()
        return True

    def clear(self) -> int:
        """Drop everything not yet sent (a subscriber that fell behind); returns how many were dropped."""
        dropped = len(self._pending)
        self._pending.clear()
        self._bytes = 0
        return dropped

    def end(self) -> None:
        """No more packets: the sender sends what is queued, then the track ends."""
        self._ended = True
        self._wakeup.set()

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        while True:
            while not self._pending:
                if self._ended or self.readyState != "live":
                    self.stop()
                    raise MediaStreamError
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._pace is None:
                break
            now = asyncio.get_running_loop().time()
            if self._release_at <= now:
                self._release_at = now
                break
            await asyncio.sleep(self._release_at - now)  # pacing a burst, not waiting for a condition
            if self._pending:  # (it may have been cleared meanwhile)
                break
        data, pts = self._pending.popleft()
        self._bytes -= len(data)
        if self._pace is not None:
            self._release_at += len(data) * 8 / self._pace
        self.packets_out += 1
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        return packet

    def stop(self) -> None:
        super().stop()
        self._wakeup.set()
