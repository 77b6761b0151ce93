"""The fast send path: a sink output that packetizes each frame once for every subscriber and sends RTP itself.

With aiortc's own sender (`PacketTrack`), every subscriber's sender splits and packetizes every frame again,
builds an `RtpPacket` per packet, serialises its header extensions and awaits two coroutines before SRTP and
`sendto`: about 45 us per packet. Here the payloads of a frame are made once (shared through `PayloadCache`, keyed
by the frame's bytes object, which the source hands to every sink), and per subscriber and packet only a 12-byte
header is written, SRTP-protected (C) and sent on the ICE pair's socket (`rtc.aiortc_adapter.DirectSender`).
aiortc's sender keeps its RTCP role: sender reports, the subscriber's NACK (answered from `DirectSender`'s history
with RTX), PLI/FIR (to the sink).

Per-packet forwarding (`push_packet`, meetings): a publisher's RTP packet goes out to every subscriber as soon as
it arrives, without waiting for the rest of its frame; per subscriber only the header changes (SSRC, payload type,
and sequence number and timestamp moved onto the subscriber's own continuous numbering: a new run, after a
keyframe-gated start or a re-point, continues right after the last packet this output sent, so the subscriber
never sees a jump; late copies of a run's packets, retransmitted by the publisher, keep their place).

Until the connection is up, and while a burst (the GOP cache at a start) is paced, frames and packets wait in a
bounded queue drained by a task; otherwise they go out synchronously inside `push`/`push_packet`, so a steady
stream costs no task, no timer and no coroutine per subscriber. A subscriber whose socket backs up (asyncio's
write buffer grows) is reported full, and the sink drops to the next keyframe.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import struct
from collections.abc import Callable

from rtc.aiortc_adapter import DirectSender, packetize

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHII")
_WRITE_BUFFER_LIMIT = 256 * 1024
_PACKETS_PER_FRAME = 16
"""The queue's bound in packets is this many times its bound in frames."""
_RUN_WINDOW = 1024
"""A late packet more than this many sequence numbers before the newest one of its run is not forwarded (nor one
from before the run's start)."""


def _seq_delta(a: int, b: int) -> int:
    """a - b on the 16-bit sequence circle, in [-32768, 32767]."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


_MARKER = 1 << 16
_START = 1 << 17


class PayloadCache:
    """RTP payloads of recent frames, made once whatever the number of subscribers.

    Keyed by the identity of the frame's bytes (every sink of a source gets the same object); the cache keeps the
    object itself, so an id is never reused while its entry lives."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._entries: collections.OrderedDict[int, tuple[bytes, list[bytes]]] = collections.OrderedDict()
        self.packetized = 0

    def payloads(self, codec: str, data: bytes) -> list[bytes]:
        entry = self._entries.get(id(data))
        if entry is not None and entry[0] is data:
            return entry[1]
        payloads = packetize(codec, data)
        self.packetized += 1
        self._entries[id(data)] = (data, payloads)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return payloads


PAYLOADS = PayloadCache()
"""Shared by every direct output of the process (one event loop: no lock needed)."""


class DirectOutput:
    """A `media.forwarding.Output` that sends through a `DirectSender` (see the module's docstring)."""

    def __init__(
        self,
        sender: DirectSender,
        codec: str,
        *,
        max_frames: int = 200,
        pace_bps: int | None = 20_000_000,
        payloads: PayloadCache = PAYLOADS,
    ) -> None:
        self._sender = sender
        self._codec = codec
        self._max_frames = max_frames
        self._pace = pace_bps
        self._payloads = payloads
        self._queue: collections.deque[tuple[bytes, int, int]] = collections.deque()
        """(data, pts, flags): a frame (flags < 0) or a packet (the source's sequence number in the low 16 bits,
        `_MARKER` and `_START`)."""
        self._queued_bytes = 0
        self._drain: asyncio.Task[None] | None = None
        self._release_at = 0.0
        self._ended = False
        self._seq = random.randrange(32768)  # lower half, as aiortc does, so a wrap cannot break SRTP early on
        self._ts_origin = random.getrandbits(32)
        self._pt: int | None = None
        self._header = bytearray(12)
        self._steady = False
        """Ready, and no paced burst in progress: packets go straight out (`push_packet`)."""
        self._ssrc = sender.ssrc
        self._seq_offset = 0
        """Per-packet forwarding: the subscriber's sequence number minus the source's, for the current run."""
        self._run_first = 0
        """The run's oldest source sequence number still forwarded (its start, then trailing the newest)."""
        self._run_newest = 0
        self._run_octets = 0
        self._run_packets = 0
        self.keyframe_handler: Callable[[], None] | None = None
        self.frames_sent = 0
        self.unnegotiated_frames = 0
        self.packets_sent = 0

    @property
    def sender(self) -> DirectSender:
        return self._sender

    @property
    def accepting(self) -> bool:
        return not self._ended and not self._sender.closed()

    @property
    def negotiated(self) -> bool:
        """The subscriber's codec is known (its answer was applied): frames can be sent. Until then `push` refuses
        frames (counted in `unnegotiated_frames`); `media.forwarding.Sink` waits, then starts on a keyframe."""
        if self._pt is None:
            if not self._sender.negotiated():
                return False
            self._pt, _ = self._sender.payload_types()
        return True

    takes_packets = True
    """`media.forwarding.Sink` may hand this output single RTP packets (`push_packet`) instead of frames."""

    @property
    def pending_bytes(self) -> int:
        return self._queued_bytes + self._sender.write_buffer_size()

    def push(self, data: bytes, pts: int) -> bool:
        if not self.accepting or len(self._queue) >= self._max_frames:
            return False
        if self._pt is None and not self.negotiated:
            # A sink pointed before the subscriber's answer: raising here would end the publisher's receive loop.
            self.unnegotiated_frames += 1
            return False
        if self._sender.write_buffer_size() > _WRITE_BUFFER_LIMIT:
            return False  # the kernel does not take this subscriber's packets fast enough
        if not self._queue and self._sender.ready():
            now = asyncio.get_running_loop().time()
            if self._release_at <= now:
                self._send(data, pts, now)
                return True
        self._enqueue(data, pts, -1)
        return True

    def push_packet(self, payload: bytes, pts: int, seq: int, marker: bool, start: bool) -> bool:
        """One RTP packet of the source (`seq`: its sequence number there) at `pts`; `start`: it begins a new run
        (the first packet of a keyframe after a gated start, or of the first frame after a cache burst), numbered
        right after what this output sent last. False: refused (not negotiated, or the subscriber fell behind)."""
        if self._ended or (self._pt is None and not self.negotiated):
            return False
        if self._steady and not self._queue:
            # The common case, kept short: up, nothing queued or paced; the socket's backlog is looked at once a frame.
            if marker and self._sender.write_buffer_size() > _WRITE_BUFFER_LIMIT:
                return False
            self._send_packet(payload, pts, seq, marker, start)
            return True
        if self._sender.write_buffer_size() > _WRITE_BUFFER_LIMIT:
            return False  # the kernel does not take this subscriber's packets fast enough
        if not self._queue and self._sender.ready() and self._release_at <= asyncio.get_running_loop().time():
            self._steady = True
            self._send_packet(payload, pts, seq, marker, start)
            return True
        if len(self._queue) >= self._max_frames * _PACKETS_PER_FRAME or self._sender.closed():
            return False
        self._enqueue(payload, pts, seq | (_MARKER if marker else 0) | (_START if start else 0))
        return True

    def _enqueue(self, data: bytes, pts: int, flags: int) -> None:
        self._queue.append((data, pts, flags))
        self._queued_bytes += len(data)
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_queue())

    def clear(self) -> int:
        dropped = len(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        return dropped

    def end(self) -> None:
        self._ended = True
        self.clear()
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None

    def keyframe_requested(self) -> None:
        """The subscriber's PLI/FIR (routed here by `media.peers.add_direct_sink`)."""
        if self.keyframe_handler is not None:
            self.keyframe_handler()

    async def _drain_queue(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue and not self._ended:
                if not self._sender.ready():
                    if not await self._sender.wait_ready():
                        break  # the connection closed (or never came up)
                    continue
                now = loop.time()
                if self._release_at > now:
                    await asyncio.sleep(self._release_at - now)  # pacing a burst
                    continue
                data, pts, flags = self._queue.popleft()
                self._queued_bytes -= len(data)
                if flags < 0:
                    self._send(data, pts, now)
                else:
                    self._send_packet(data, pts, flags & 0xFFFF, bool(flags & _MARKER), bool(flags & _START))
        finally:
            self._drain = None

    def _send(self, data: bytes, pts: int, now: float) -> None:
        sender = self._sender
        if not self.negotiated or self._pt is None:
            return  # not reached: `push` queues nothing before the codec is known
        pt = self._pt
        payloads = self._payloads.payloads(self._codec, data)
        timestamp = (self._ts_origin + pts) & 0xFFFFFFFF
        header = self._header
        pack = _HEADER.pack_into
        last = len(payloads) - 1 if self._codec != "opus" else -1  # audio: the marker means a talkspurt start
        seq = self._seq
        ssrc = sender.ssrc
        octets = 0
        packets: list[bytes] = []
        for i, payload in enumerate(payloads):
            pack(header, 0, 0x80, pt | 0x80 if i == last else pt, seq, timestamp, ssrc)
            packets.append(bytes(header) + payload)
            octets += len(payload)
            seq = (seq + 1) & 0xFFFF
        sender.send_frame(packets, self._seq)
        self._seq = seq
        sender.account(timestamp, len(payloads), octets)
        self.frames_sent += 1
        self.packets_sent += len(payloads)
        if self._pace is not None:
            self._release_at = max(now, self._release_at) + len(data) * 8 / self._pace
            self._steady = False

    def _send_packet(self, payload: bytes, pts: int, seq: int, marker: bool, start: bool) -> None:
        pt = self._pt
        if pt is None:
            return  # not reached: `push_packet` takes nothing before the codec is known
        if start:
            self._seq_offset = (self._seq - seq) & 0xFFFF
            self._run_first = self._run_newest = seq
        else:
            if _seq_delta(seq, self._run_first) < 0:
                return  # a late copy from before this run (its number here belongs to what was sent before)
            if _seq_delta(seq, self._run_newest) > 0:
                self._run_newest = seq
                if _seq_delta(seq, self._run_first) > _RUN_WINDOW:
                    self._run_first = (seq - _RUN_WINDOW) & 0xFFFF
        out_seq = (seq + self._seq_offset) & 0xFFFF
        if _seq_delta(out_seq, self._seq) >= 0:
            self._seq = (out_seq + 1) & 0xFFFF
        timestamp = (self._ts_origin + pts) & 0xFFFFFFFF
        self._sender.send(
            _HEADER.pack(0x80, pt | 0x80 if marker else pt, out_seq, timestamp, self._ssrc) + payload, out_seq
        )
        self.packets_sent += 1
        self._run_packets += 1
        self._run_octets += len(payload)
        if marker:
            self._sender.account(timestamp, self._run_packets, self._run_octets)
            self._run_packets = self._run_octets = 0
            self.frames_sent += 1

    async def close(self) -> None:
        task, self._drain = self._drain, None
        self._ended = True
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
