"""A camera's H.264 packets over RTSP, read with PyAV in a thread of its own, never decoded.

PyAV blocks, so `RtspSource.run()` runs in a worker thread and hands each packet to the event loop with
`call_soon_threadsafe`. Packets leave as Annex-B with SPS/PPS before every keyframe (`h264.ParameterSets`) and
a 90 kHz timestamp counted from the first packet, which is what WebRTC's H.264 payloader takes. The queue towards
the loop is bounded: if the loop falls behind, packets are dropped up to the next keyframe (a viewer then sees a
short freeze rather than a broken picture). FFmpeg's socket timeout bounds a stalled camera; `stop()` takes effect at
the next packet (or that timeout). Error text from FFmpeg can hold the URL with its password: it is scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from agents.live.h264 import BitstreamError, ParameterSets
from common.logs import SECRETS
from common.redact import scrub_urls

logger = logging.getLogger(__name__)

CLOCK_RATE = 90_000
READ_ERRORS: tuple[type[Exception], ...] = (av.error.FFmpegError, OSError, ValueError, IndexError)


@dataclass(frozen=True)
class EncodedPacket:
    data: bytes
    pts: int
    """90 kHz ticks since the first packet of this source."""
    keyframe: bool


@dataclass(frozen=True)
class SourceEnd:
    """How reading ended: `stopped`, `ended` (the camera closed the stream), `stalled`, `open_failed`,
    `unsupported` (not H.264), or `error`; `detail` is safe to log and to send to the controller."""

    reason: str
    detail: str = ""
    packets: int = 0


def redact(text: str) -> str:
    return SECRETS.scrub(scrub_urls(text))


class RtspSource:
    """Reads one RTSP stream into an asyncio queue; `packets()` iterates it, `stop()` ends it."""

    def __init__(
        self,
        url: str,
        *,
        transport: str = "tcp",
        open_timeout_s: float = 10.0,
        stall_timeout_s: float = 5.0,
        queue_size: int = 256,
        name: str = "camera",
    ) -> None:
        self._url = url  # carries the camera's credentials: never logged
        self._transport = transport
        self._open_timeout_s = open_timeout_s
        self._stall_timeout_s = stall_timeout_s
        self._name = name
        self._stop = threading.Event()
        self._queue: asyncio.Queue[EncodedPacket | SourceEnd] = asyncio.Queue(queue_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._skip_to_keyframe = False
        self.bytes_read = 0
        self.packets_read = 0
        self.dropped = 0
        self.end: SourceEnd | None = None

    def __repr__(self) -> str:
        return f"RtspSource({self._name!r})"

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> SourceEnd:
        """Read in a worker thread until the stream ends or `stop()`; the end also goes into the queue."""
        self._loop = asyncio.get_running_loop()
        try:
            end = await asyncio.to_thread(self._read)
        except asyncio.CancelledError:
            self._stop.set()
            raise
        self.end = end
        self._queue_end(end)
        return end

    async def get(self) -> EncodedPacket | SourceEnd:
        """The next packet, or how the source ended."""
        return await self._queue.get()

    def backlog(self) -> list[EncodedPacket]:
        """The packets queued so far from the last keyframe on (older ones are dropped): what was read while a
        session was being set up, worth sending at once. An end already queued stays queued."""
        kept: list[EncodedPacket] = []
        end: SourceEnd | None = None
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, SourceEnd):
                end = item
            elif item.keyframe:
                kept = [item]
            elif kept:
                kept.append(item)
        if end is not None:
            self._queue_end(end)
        return kept

    # -- in the worker thread --------------------------------------------------------------------------------------

    def _read(self) -> SourceEnd:
        try:
            return self._read_stream()
        except READ_ERRORS as exc:
            if self._stop.is_set():
                return SourceEnd("stopped", packets=self.packets_read)
            detail = redact(str(exc))
            if isinstance(exc, (av.error.TimeoutError, av.error.ExitError)) and self.packets_read:
                return SourceEnd("stalled", f"no packet for {self._stall_timeout_s:g} s", self.packets_read)
            return SourceEnd("open_failed" if not self.packets_read else "error", detail, self.packets_read)
        except Exception as exc:
            logger.exception("%s: the live source failed", self._name)
            return SourceEnd("error", redact(str(exc)), self.packets_read)

    def _read_stream(self) -> SourceEnd:
        options = {
            "rtsp_transport": self._transport,
            "timeout": str(int(self._stall_timeout_s * 1_000_000)),
            # No stream analysis: the codec and clock come from the SDP, and FFmpeg's default probing held the
            # first packets back for 1.1-1.7 s (measured with the simulator), all of it added to a first viewer's
            # wait. Probed packets are not lost either way; they only come late.
            "probesize": "32",
            "analyzeduration": "0",
            "fpsprobesize": "0",
        }
        with av.open(self._url, "r", options=options, timeout=(self._open_timeout_s, None)) as container:
            if not container.streams.video:
                return SourceEnd("unsupported", "the stream has no video")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec != "h264":
                return SourceEnd("unsupported", f"the stream is {codec}, live view forwards H.264 only")
            fixer = ParameterSets(bytes(stream.codec_context.extradata or b""))
            time_base: Fraction = stream.time_base or Fraction(1, CLOCK_RATE)
            first: int | None = None
            pending: tuple[bytes, bool] | None = None
            step = max(1, round(Fraction(1, 25) / time_base))  # one frame at 25 fps, in the stream's time base
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return SourceEnd("stopped", packets=self.packets_read)
                if packet.size == 0:
                    continue
                key = bool(packet.is_keyframe)
                try:
                    data = fixer.fix(bytes(packet), key)
                except BitstreamError as exc:
                    logger.debug("%s: dropping a packet: %s", self._name, exc)
                    continue
                self.packets_read += 1
                self.bytes_read += packet.size
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    # The first packet after PLAY (often the keyframe itself) can come without a time: it takes
                    # the next packet's, one frame earlier. Dropping it would make a first viewer wait a GOP.
                    pending = (data, key)
                    continue
                if first is None:
                    first = int(stamp) - (step if pending is not None else 0)
                pts = max(0, round((int(stamp) - first) * time_base * CLOCK_RATE))
                if pending is not None:
                    earlier = max(0, pts - round(step * time_base * CLOCK_RATE))
                    self._hand_over(EncodedPacket(pending[0], earlier, pending[1]))
                    pending = None
                self._hand_over(EncodedPacket(data, pts, key))
            if self._stop.is_set():
                return SourceEnd("stopped", packets=self.packets_read)
            return SourceEnd("ended", "the camera ended the stream", self.packets_read)

    def _hand_over(self, packet: EncodedPacket) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us: the run is over
            loop.call_soon_threadsafe(self._put, packet)

    # -- on the event loop ---------------------------------------------------------------------------------------

    def _put(self, packet: EncodedPacket) -> None:
        if self._skip_to_keyframe and not packet.keyframe:
            self.dropped += 1
            return
        self._skip_to_keyframe = False
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.dropped += 1
            self._skip_to_keyframe = True

    def _queue_end(self, end: SourceEnd) -> None:
        while True:
            try:
                self._queue.put_nowait(end)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()  # the end matters more than a stale packet


def frame_packet(packet: EncodedPacket) -> Any:
    """An `av.Packet` as aiortc's packetizer takes it: Annex-B data, `pts` and `time_base` of 90 kHz."""
    out = av.Packet(packet.data)
    out.pts = packet.pts
    out.dts = packet.pts
    out.time_base = Fraction(1, CLOCK_RATE)
    out.is_keyframe = packet.keyframe
    return out
