"""The forwarding core: one publisher's track (a `Source`) fanned out to subscribers' tracks (`Sink`s), as is.

Meetings (many sources, each subscriber's sinks pointed at a few of them) and camera relays (one source, many
receive-only sinks) both use it. The core knows nothing about peer connections: frames come in through
`Source.push` (the node wires it to `rtc.aiortc_adapter.tap_receiver`), and go out through each sink's output,
a `rtc.packet_track.PacketTrack` that aiortc's sender packetizes without encoding (`media.peers` does the wiring).

What it guarantees:
- a new or re-pointed sink starts on a keyframe: from the source's GOP cache at once if it holds one, otherwise
  it waits for the next keyframe and the publisher is asked for one, and asked again (1 s, then backing off to
  every 5 s) for as long as none comes: a lost PLI or one the encoder ignored does not leave it waiting for good;
- keyframe requests (subscribers' PLI/FIR, joins, drops) are coalesced, never dropped (`media.keyframes`);
- a slow subscriber never grows memory or holds up the others: its sink's queue is bounded in frames and bytes,
  and when it overflows the sink drops what is queued and everything up to the next keyframe (counted);
- timestamps stay continuous for a subscriber across re-pointing, so its decoder sees one stream;
- counters for metrics and tests on both ends (`SourceStats`, `SinkStats`).

Per-packet forwarding (meetings): a source made with `by_packet=True` is fed every RTP packet as it arrives
(`push_packet`) besides its complete frames (`push`, for the GOP cache, keyframe bookkeeping and sinks that take
frames). A video sink whose output takes packets (`media.direct.DirectOutput`) then forwards each packet at once
instead of waiting for its frame: a start waits for the first packet of a keyframe (or, after a GOP cache burst,
for the first packet of the next frame), and the output keeps the subscriber's sequence numbers contiguous across
starts and re-points. A sink pointed while a keyframe's packets are arriving starts on that keyframe, its packets
that came already replayed, not on the GOP cache (which still holds the group before it, that the frames after
it do not refer to). A sink that starts from the GOP cache while the next frame's packets are arriving gets that
frame too: its packets that came already are replayed after the cached frames (unless its first one is no longer
at hand: then it resumes at the frame after it). The frames of a sink in that mode are not sent again.

Retransmissions to subscribers (NACK) are answered by aiortc's sender from the packets it sent (its history of
128 packets; the direct path keeps its own of 256); retransmissions from publishers are asked for by aiortc's
receiver and waited for by the adapter's jitter buffer (and forwarded, on the per-packet path, when they come).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, cast

from common.clock import Clock
from media.gop import Frame, GopCache
from media.keyframes import KeyframeRequests, is_keyframe
from rtc.aiortc_adapter import ReceivedPacket
from rtc.packet_track import PacketTrack

logger = logging.getLogger(__name__)

_RECENT_PACKETS = 128
"""Packets a `by_packet` source keeps for a sink whose start packet came after the ones that follow it, or that
starts on a keyframe or after the GOP cache while a frame's packets are arriving (its first ones came before)."""

_REASK_FIRST = 1.0
"""Seconds a sink waits for the keyframe it asked for before it asks again (its PLI or the keyframe was lost, or
the encoder ignored the request): a PLI is answered within a round trip and an encode, well under this."""
_REASK_MAX = 5.0
"""The interval between a waiting sink's requests doubles up to this: each request that reaches the publisher
costs every subscriber of it a keyframe (several times a delta frame), so a publisher that ignores them is asked
once per 5 s per waiting sink at most (and, coalesced across its sinks, at most once per `keyframe_min_interval`)."""

__all__ = ["Frame", "Output", "PacketOutput", "Sink", "SinkStats", "Source", "SourceStats"]


@dataclass
class SourceStats:
    frames_in: int = 0
    bytes_in: int = 0
    keyframes_in: int = 0
    gaps: int = 0
    """Times frames were lost on the way in for good (sinks then waited for a keyframe)."""
    keyframe_requests_in: int = 0
    """Keyframe requests from sinks: subscribers' PLI/FIR, joins and re-points without cache, overflows."""
    keyframe_requests_out: int = 0
    """PLIs that reached the publisher (after coalescing)."""
    keyframe_requests_coalesced: int = 0


@dataclass
class SinkStats:
    frames_out: int = 0
    """Frames handed to the subscriber's sender."""
    bytes_out: int = 0
    cached_frames_out: int = 0
    """Of those, frames from the GOP cache at a start."""
    gated: int = 0
    """Frames not sent while waiting for a keyframe after a start, a re-point or a loss upstream."""
    unnegotiated: int = 0
    """Frames not sent because the output had no negotiated codec yet (the subscriber's answer was not applied)."""
    drops: int = 0
    """Frames dropped because the subscriber fell behind (queued ones and the ones until the next keyframe)."""
    overflows: int = 0
    """Times the subscriber fell behind."""
    keyframe_requests: int = 0
    """PLI/FIR the subscriber sent."""
    keyframe_rerequests: int = 0
    """Keyframe requests made again because the sink waited for a keyframe longer than the interval."""
    repoints: int = 0


class Output(Protocol):
    """Where a sink's frames go: a bounded queue read by one subscriber's sender (`PacketTrack` is one)."""

    @property
    def accepting(self) -> bool: ...

    @property
    def pending_bytes(self) -> int: ...

    def push(self, data: bytes, pts: int) -> bool: ...

    def clear(self) -> int: ...

    def end(self) -> None: ...


class PacketOutput(Output, Protocol):
    """An output that also takes single RTP packets (`media.direct.DirectOutput`): see "Per-packet forwarding"."""

    takes_packets: bool

    def push_packet(self, payload: bytes, pts: int, seq: int, marker: bool, start: bool) -> bool: ...


class Source:
    """One publisher's one track: encoded frames in, fanned out to the sinks pointed at it."""

    def __init__(
        self,
        name: str,
        kind: str,
        codec: str,
        *,
        clock: Clock,
        clock_rate: int = 90_000,
        request_keyframe: Callable[[], Awaitable[bool]] | None = None,
        gop_cache: bool = True,
        keyframe_min_interval: float = 0.3,
        gop_max_frames: int = 250,
        gop_max_bytes: int = 4 * 1024 * 1024,
        by_packet: bool = False,
    ) -> None:
        """`request_keyframe` sends a PLI to the publisher (True if sent): `ReceiverTap.request_keyframe` for a
        WebRTC publisher; None for a source that cannot make keyframes on demand. `gop_cache` applies to video.
        `by_packet`: the source is fed `push_packet` too (video), and sinks that can forward packets do."""
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be audio or video, not {kind!r}")
        self.name = name
        self.kind = kind
        self.codec = codec
        self.clock_rate = clock_rate
        self._clock = clock
        self._sinks: list[Sink] = []
        self._frame_sinks: list[Sink] = []
        self._packet_sinks: list[Sink] = []
        """The sinks, split by what they take (`Sink.by_packet`)."""
        self._gop = GopCache(gop_max_frames, gop_max_bytes) if gop_cache and kind == "video" else None

        async def never() -> bool:
            return False

        self._requests = KeyframeRequests(request_keyframe or never, clock, keyframe_min_interval)
        self._stats = SourceStats()
        self.by_packet = by_packet and kind == "video"
        self._recent: list[ReceivedPacket | None] = [None] * _RECENT_PACKETS
        """The last packets by sequence number, to replay a frame's packets that came before its first one."""
        self._newest_seq: int | None = None
        self._keyframe_start: ReceivedPacket | None = None
        """The first packet of the newest keyframe while its frame is not whole (the GOP cache still holds the
        group before it): a sink pointed meanwhile starts on it (`_keyframe_in_progress`)."""
        self._newest_keyframe_ts = -1
        self.closed = asyncio.Event()

    # -- in

    def push(self, data: bytes, timestamp: int) -> None:
        """One complete encoded frame from the publisher, `timestamp` in clock-rate units (unwrapped)."""
        if self.closed.is_set() or not data:
            return
        key = self.kind == "audio" or is_keyframe(self.codec, data)
        frame = Frame(data, timestamp, key)
        stats = self._stats
        stats.frames_in += 1
        stats.bytes_in += len(data)
        if key and self.kind == "video":
            stats.keyframes_in += 1
            if not self.by_packet:  # packet by packet, sinks started on its first packet (`push_packet`)
                self._requests.keyframe_arrived()
        start = self._keyframe_start
        if start is not None and timestamp >= start.timestamp:
            # Whole (in the GOP cache from now on), or not a keyframe after all (an SPS before a delta frame).
            self._keyframe_start = None
        if self._gop is not None:
            self._gop.add(frame)
        for sink in tuple(self._frame_sinks):
            sink._offer(frame)

    def push_packet(self, packet: ReceivedPacket) -> None:
        """One RTP packet of the publisher as it arrived (a `by_packet` video source), before its frame is whole:
        forwarded at once by the sinks that take packets."""
        if self.closed.is_set():
            return
        seq = packet.sequence_number
        newest = self._newest_seq
        if newest is None or 0 < (seq - newest) & 0xFFFF < 0x8000:
            self._newest_seq = seq
            self._recent[seq % _RECENT_PACKETS] = packet
        elif (newest - seq) & 0xFFFF < _RECENT_PACKETS:  # a late copy still in the window (not evicting a newer one)
            self._recent[seq % _RECENT_PACKETS] = packet
        if packet.keyframe and packet.timestamp > self._newest_keyframe_ts:  # not a late copy of an older one
            # The waiting sinks start on this packet: it answers their requests. A sink pointed after it starts on
            # it by replay (`_keyframe_in_progress`) or, if it cannot, waits: the frame's completion must not count
            # as an answer to its request.
            self._requests.keyframe_arrived()
            self._newest_keyframe_ts = packet.timestamp
            self._keyframe_start = packet
        for sink in tuple(self._packet_sinks):
            sink._offer_packet(packet)

    def _arrived_after(self, seq: int) -> list[ReceivedPacket]:
        """The packets after `seq` that arrived before it (`seq` came late: a reordering or an RTX copy)."""
        newest = self._newest_seq
        if newest is None:
            return []
        ahead = (newest - seq) & 0xFFFF
        if ahead == 0 or ahead >= min(0x8000, _RECENT_PACKETS):
            return []
        found: list[ReceivedPacket] = []
        for k in range(1, ahead + 1):
            s = (seq + k) & 0xFFFF
            packet = self._recent[s % _RECENT_PACKETS]
            if packet is not None and packet.sequence_number == s:
                found.append(packet)
        return found

    def _keyframe_in_progress(self) -> ReceivedPacket | None:
        """The first packet of a keyframe not whole yet, if the packets after it are still at hand to replay."""
        start, newest = self._keyframe_start, self._newest_seq
        if start is None or newest is None or (newest - start.sequence_number) & 0xFFFF >= _RECENT_PACKETS:
            return None
        return start

    def _frame_in_progress_after(self, timestamp: int) -> ReceivedPacket | None:
        """The first packet of the oldest frame after `timestamp` whose packets have begun to arrive, if it and the
        ones after it are still at hand to replay; walked back from the newest packet to one of a frame at
        `timestamp` or before (without it, older frames after `timestamp` may have passed already)."""
        newest = self._newest_seq
        if newest is None:
            return None
        oldest: ReceivedPacket | None = None
        for back in range(_RECENT_PACKETS):
            seq = (newest - back) & 0xFFFF
            packet = self._recent[seq % _RECENT_PACKETS]
            if packet is None or packet.sequence_number != seq:
                continue  # not arrived (lost, or reordered and still to come)
            if packet.timestamp <= timestamp:
                return oldest if oldest is not None and oldest.starts_frame else None
            oldest = packet
        return None

    def lost(self) -> None:
        """Frames were lost on the way in: hold every sink until a keyframe, and ask for one."""
        if self.kind != "video":
            return
        self._stats.gaps += 1
        self._keyframe_start = None  # it may be the frame lost: sinks pointed now wait for the one asked for
        if self._gop is not None:
            self._gop.invalidate()
        for sink in tuple(self._sinks):
            sink._gate()
        self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (coalesced with other requests)."""
        if self.kind == "video":
            self._requests.request()

    # -- out

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return tuple(self._sinks)

    @property
    def gop_frames(self) -> list[Frame]:
        """The cached frames from the last keyframe (empty if there is no usable cache)."""
        return self._gop.frames() if self._gop is not None and self._gop.valid else []

    @property
    def stats(self) -> SourceStats:
        """A snapshot of the counters."""
        s = self._stats
        r = self._requests
        return SourceStats(
            frames_in=s.frames_in,
            bytes_in=s.bytes_in,
            keyframes_in=s.keyframes_in,
            gaps=s.gaps,
            keyframe_requests_in=r.requested,
            keyframe_requests_out=r.sent,
            keyframe_requests_coalesced=r.coalesced,
        )

    def _attach(self, sink: Sink) -> None:
        if sink not in self._sinks:
            self._sinks.append(sink)
            (self._packet_sinks if sink._by_packet else self._frame_sinks).append(sink)

    def _detach(self, sink: Sink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
            (self._packet_sinks if sink._by_packet else self._frame_sinks).remove(sink)

    async def close(self) -> None:
        """The publisher left: the sinks pointed here stop receiving (they stay open, to be re-pointed)."""
        if self.closed.is_set():
            return
        self.closed.set()
        for sink in list(self._sinks):
            sink._source_closed(self)
        self._sinks.clear()
        self._frame_sinks.clear()
        self._packet_sinks.clear()
        await self._requests.close()


class Sink:
    """One subscriber's one track: frames from at most one source at a time, to one output."""

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        clock: Clock,
        clock_rate: int | None = None,
        max_frames: int = 200,
        max_bytes: int = 3 * 1024 * 1024,
        output: Output | None = None,
        pace_bps: int | None = 20_000_000,
    ) -> None:
        """`max_frames` and `max_bytes` bound what waits for the subscriber (enough for a GOP cache burst plus
        the connection set-up: 2 s at 25 fps is 50 frames, about 0.5 MB at 2 Mbit/s). `output` defaults to a
        `PacketTrack` (`self.track`) to add to the subscriber's peer connection, which sends bursts (the GOP cache
        at a start) at `pace_bps` at most (video; None: as fast as aiortc can)."""
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be audio or video, not {kind!r}")
        self.name = name
        self.kind = kind
        self._clock = clock
        self.clock_rate = clock_rate or (90_000 if kind == "video" else 48_000)
        self._max_bytes = max_bytes
        self.track: PacketTrack | None = None
        if output is None:
            pace = pace_bps if kind == "video" else None
            self.track = PacketTrack(kind, clock_rate=self.clock_rate, max_packets=max_frames, pace_bps=pace)
            output = self.track
        self._out: Output = output
        self._takes_packets = kind == "video" and bool(getattr(output, "takes_packets", False))
        self._packet_out = cast(PacketOutput, output)
        """The same output, for `push_packet` (used only when `_takes_packets`)."""
        self._by_packet = False
        """Pointed at a `by_packet` source with an output that takes packets: forwarding packet by packet."""
        self._resume_after: int | None = None
        """Packet by packet after a GOP cache burst: the last cached frame's timestamp (the next frame's first
        packet resumes the stream); None: a start waits for a keyframe's first packet."""
        self._source: Source | None = None
        self._waiting = True
        self._dropping = False
        """Waiting for a keyframe because the subscriber fell behind (skipped frames count as drops)."""
        self._unnegotiated = False
        """The output refused a frame for want of a negotiated codec: ready again, it starts on a keyframe."""
        self._rebase = True
        self._offset = 0
        self._last_pts: int | None = None
        self._last_at = 0.0
        self._asked_at = 0.0
        """When this sink last asked for a keyframe while waiting for one."""
        self._reask_after = _REASK_FIRST
        """How long after `_asked_at` it asks again if it is still waiting (doubling up to `_REASK_MAX`)."""
        self._stats = SinkStats()
        self._closed = False

    @property
    def source(self) -> Source | None:
        return self._source

    @property
    def by_packet(self) -> bool:
        """Forwarding packet by packet (a `by_packet` source and an output that takes packets), not by frame."""
        return self._by_packet

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._source is not None and self._waiting

    @property
    def stats(self) -> SinkStats:
        """A snapshot of the counters."""
        return SinkStats(**vars(self._stats))

    def point(self, source: Source | None, *, use_cache: bool = True) -> None:
        """Take frames from `source` from now on (None: pause). Video starts on a keyframe: packet by packet, the
        one arriving if its first packet came already; else the source's GOP cache if it has one; else the next
        keyframe, which the publisher is asked for. `use_cache=False`: the next keyframe, whatever came already."""
        if self._closed or source is self._source:
            return
        if source is not None and source.kind != self.kind:
            raise ValueError(f"a {self.kind} sink cannot take a {source.kind} source")
        if self._source is not None:
            self._source._detach(self)
            self._stats.repoints += 1
        self._source = source
        self._rebase = True
        self._resume_after = None
        self._by_packet = source is not None and source.by_packet and self._takes_packets
        if source is None:
            self._waiting = True
            return
        if source.closed.is_set():
            self._source = None
            return
        source._attach(self)
        if self.kind == "audio":
            self._waiting = False
            return
        if self._by_packet and use_cache and self._replay_from(source._keyframe_in_progress()):
            # The keyframe whose packets are arriving: the GOP cache still holds the group before it, which the
            # frames after it do not refer to.
            return
        # A keyframe arriving that cannot be replayed (longer than the recent packets): the cache holds the group
        # before it, which the frames to come do not refer to, so wait for the next keyframe instead.
        stale = self._by_packet and source._keyframe_start is not None
        cached = source.gop_frames if use_cache and not stale else []
        if cached:
            self._waiting = False
            for frame in cached:
                if self._send(frame):
                    self._stats.cached_frames_out += 1
            if self._by_packet and not self._waiting:
                # Live packets take over at the first packet of the frame after the last cached one.
                self._waiting = True
                self._resume_after = cached[-1].timestamp
                # The frame whose packets are arriving, if its first is still at hand: live packets alone would
                # resume at the frame after it, which refers to one the subscriber never got.
                self._replay_from(source._frame_in_progress_after(cached[-1].timestamp))
        else:
            self._waiting = True
            self._ask_for_keyframe()

    def _replay_from(self, start: ReceivedPacket | None) -> bool:
        """Start on `start`, the first packet of a frame that came already, and send the ones after it that came
        too (`Source._arrived_after`); queued behind whatever the output holds (cached frames). False: none."""
        if start is None:
            return False
        self._waiting = True
        self._offer_packet(start)
        return True

    def keyframe_requested(self) -> None:
        """The subscriber sent a PLI or FIR: pass it on to the source's publisher (coalesced there)."""
        self._stats.keyframe_requests += 1
        if self._source is not None:
            self._source.request_keyframe()

    def close(self) -> None:
        """The subscriber left: detach and end the output."""
        if self._closed:
            return
        self._closed = True
        self._leave_source()
        self._out.end()

    # -- called by the source

    def _offer(self, frame: Frame) -> None:
        if self._unnegotiated:
            if not getattr(self._out, "negotiated", True):
                self._stats.unnegotiated += 1
                return
            self._unnegotiated = False
            if self.kind == "video" and not frame.keyframe:
                self._waiting = True
                self._ask_for_keyframe()
        if self._waiting:
            if not frame.keyframe:
                self._hold_back()
                return
            self._waiting = False
            self._dropping = False
        self._send(frame)

    def _offer_packet(self, packet: ReceivedPacket) -> None:
        if self._unnegotiated:
            if not getattr(self._out, "negotiated", True):
                if packet.starts_frame:
                    self._stats.unnegotiated += 1
                return
            self._unnegotiated = False
            self._resume_after = None
            if not packet.keyframe:
                self._waiting = True
                self._ask_for_keyframe()
        start = False
        if self._waiting:
            resume = self._resume_after
            if not (packet.keyframe or (packet.starts_frame and resume is not None and packet.timestamp > resume)):
                if packet.starts_frame:
                    self._hold_back()
                return
            self._waiting = False
            self._dropping = False
            self._resume_after = None
            start = True
        self._send_packet(packet, start)
        if start and self._source is not None and not self._waiting:
            # The start packet came late (reordered, or an RTX copy): the ones after it, passed over while
            # waiting, would be holes in the subscriber's sequence that nothing fills.
            for later in self._source._arrived_after(packet.sequence_number):
                self._send_packet(later, False)

    def _hold_back(self) -> None:
        """A frame not sent while waiting for a keyframe: dropped after an overflow, else gated. If the keyframe
        asked for is overdue, ask again: looked at here, once a frame while waiting, rather than on a timer."""
        stats = self._stats
        if self._dropping:
            stats.drops += 1
        else:
            stats.gated += 1
        if self._resume_after is not None:
            return  # after a cache burst: any next frame will do, no keyframe is waited for
        now = self._clock.monotonic()
        if now - self._asked_at >= self._reask_after:
            self._asked_at = now
            self._reask_after = min(2 * self._reask_after, _REASK_MAX)
            stats.keyframe_rerequests += 1
            if self._source is not None:
                self._source.request_keyframe()

    def _ask_for_keyframe(self) -> None:
        """Ask the source's publisher for the keyframe this sink now waits for (again later if none comes)."""
        self._note_asked()
        if self._source is not None:
            self._source.request_keyframe()

    def _note_asked(self) -> None:
        """A keyframe was asked for (by this sink or for it): re-requests count from now, at the first interval."""
        self._asked_at = self._clock.monotonic()
        self._reask_after = _REASK_FIRST

    def _send_packet(self, packet: ReceivedPacket, start: bool) -> None:
        out = self._packet_out
        if (start or packet.starts_frame) and not out.accepting:
            # The subscriber's connection went away: stop taking packets (looked at once a frame).
            self._leave_source()
            return
        if self._rebase:
            now = self._clock.monotonic()
            self._rebase_onto(packet.timestamp, now)
            self._last_at = now
        pts = packet.timestamp + self._offset
        if not out.push_packet(packet.payload, pts, packet.sequence_number, packet.marker, start):
            if not out.accepting:
                self._leave_source()
                return
            stats = self._stats
            self._waiting = True
            self._resume_after = None
            if not getattr(out, "negotiated", True):
                self._unnegotiated = True
                stats.unnegotiated += 1
                return
            # The subscriber fell behind: drop what waits for it, and everything up to the next keyframe.
            stats.overflows += 1
            stats.drops += out.clear() + 1
            self._dropping = True
            self._ask_for_keyframe()
            return
        self._last_pts = pts
        stats = self._stats
        stats.bytes_out += len(packet.payload)
        if packet.marker:
            self._last_at = self._clock.monotonic()
            stats.frames_out += 1

    def _gate(self) -> None:
        """Wait for a keyframe (frames were lost upstream; the source asks for one for all its sinks)."""
        if self.kind == "video":
            self._waiting = True
            self._resume_after = None
            self._note_asked()

    def _leave_source(self) -> None:
        """Stop taking from the source (the subscriber's connection went away)."""
        if self._source is not None:
            self._source._detach(self)
            self._source = None

    def _source_closed(self, source: Source) -> None:
        if self._source is source:
            self._source = None
            self._waiting = True
            self._resume_after = None

    def _send(self, frame: Frame) -> bool:
        out = self._out
        if not out.accepting:
            # The subscriber's sender stopped reading (its connection went away): stop taking frames.
            self._leave_source()
            return False
        if not getattr(out, "negotiated", True):
            # Pointed before the subscriber's answer was applied (`DirectOutput.negotiated`): nothing can be sent
            # yet, and raising would end the publisher's receive loop. Drop until ready, then start on a keyframe.
            self._unnegotiated = True
            self._stats.unnegotiated += 1
            if self.kind == "video":
                self._waiting = True
            return False
        now = self._clock.monotonic()
        if self._rebase:
            self._rebase_onto(frame.timestamp, now)
        pts = frame.timestamp + self._offset
        fits = out.pending_bytes + len(frame.data) <= self._max_bytes
        if not (fits and out.push(frame.data, pts)):
            # The subscriber fell behind: drop what waits for it, and everything up to the next keyframe.
            stats = self._stats
            stats.overflows += 1
            stats.drops += out.clear()
            if frame.keyframe and out.push(frame.data, pts):
                self._account(frame, pts, now)
                return True
            stats.drops += 1
            if self.kind == "video":
                self._waiting = True
                self._dropping = True
                self._ask_for_keyframe()
            return False
        self._account(frame, pts, now)
        return True

    def _rebase_onto(self, timestamp: int, now: float) -> None:
        """Continue the subscriber's timeline where it left off, whatever this source's timestamps are."""
        if self._last_pts is None:
            self._offset = -timestamp
        else:
            step = max(1, round((now - self._last_at) * self.clock_rate))
            self._offset = self._last_pts + step - timestamp
        self._rebase = False

    def _account(self, frame: Frame, pts: int, now: float) -> None:
        self._last_pts = pts
        self._last_at = now
        self._stats.frames_out += 1
        self._stats.bytes_out += len(frame.data)
