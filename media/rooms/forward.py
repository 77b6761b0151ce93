"""A meeting room's media on the shared forwarding core: publishers' tracks become `media.forwarding.Source`s,
every subscriber m-line is a `media.forwarding.Sink`, re-pointed as speakers change. Nothing is decoded.

The aiortc seams (taking encoded frames before the decoder, keyframe requests both ways, codec choice) are the
adapter's (`rtc.aiortc_adapter`); this module only wires them to the room.

Who speaks: aiortc negotiates the RFC 6464 audio-level header extension and parses it into each RTP packet, but
the adapter's tap hands over reassembled frames without their header extensions, so the level is estimated from
the size of each Opus packet instead. Browsers' Opus encoders are variable-rate: a silent 20 ms frame takes a few
bytes (1-3 with DTX, 10-30 with background noise), speech 60-160 bytes at the usual 32-64 kbit/s. That is one
`len()` per packet, costs nothing, and ranks speakers well enough for "video from the most recent speakers"; it
cannot tell a loud noise from speech. `opus_level` maps the size onto the -dBov scale `SpeakerTracker` takes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
)

from common.clock import Clock
from media.forwarding import Output, SinkStats, SourceStats
from media.forwarding import Sink as CoreSink
from media.forwarding import Source as CoreSource
from media.peers import add_direct_sink
from media.rooms.plane import LevelCallback
from media.rooms.slots import Feed
from protocol.media import IceServer
from protocol.meeting import Codec, Source
from rtc.aiortc_adapter import (
    ReceivedFrame,
    ReceivedPacket,
    VideoCodec,
    force_codecs,
    tap_receiver,
)

logger = logging.getLogger(__name__)

SILENT_BYTES = 24
"""An Opus packet this small or smaller is taken as silence."""


def opus_level(size: int) -> int:
    """An audio level (0 loud .. 127 silent, as RFC 6464's -dBov) estimated from an Opus packet's size."""
    if size <= SILENT_BYTES:
        return 127
    return max(0, 100 - size)


@dataclass
class Traffic:
    """Media that meeting rooms carried: frames and bytes in from publishers and out to subscribers, keyframe
    requests that reached publishers (the node's /metrics counters)."""

    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0
    keyframe_requests: int = 0

    def add_source(self, stats: SourceStats) -> None:
        self.frames_in += stats.frames_in
        self.bytes_in += stats.bytes_in
        self.keyframe_requests += stats.keyframe_requests_out

    def add_sink(self, stats: SinkStats) -> None:
        self.frames_out += stats.frames_out
        self.bytes_out += stats.bytes_out

    def add(self, other: Traffic) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class RoomSink:
    """One subscriber m-line: a core sink whose track aiortc sends, pointed at a feed by name."""

    def __init__(self, plane: ForwardingPlane, core: CoreSink) -> None:
        self._plane = plane
        self.core = core
        self._feed: Feed | None = None

    @property
    def feed(self) -> Feed | None:
        return self._feed

    def point(self, feed: Feed | None) -> None:
        self._feed = feed
        self.core.point(self._plane.sources.get(feed) if feed is not None else None)

    def rebind(self) -> None:
        """The feed's source changed (its publisher renegotiated): follow it."""
        if self._feed is not None:
            self.core.point(self._plane.sources.get(self._feed))

    def close(self) -> None:
        if self in self._plane.sinks:
            self._plane.sinks.discard(self)
            self._plane.ended.add_sink(self.core.stats)
        self.core.close()


class ForwardingPlane:
    def __init__(
        self,
        room: str,
        codec: Codec,
        clock: Clock,
        ice_servers: list[IceServer],
        *,
        on_level: LevelCallback,
        on_feed: Callable[[Feed, bool], None],
        by_packet: bool = True,
        ended: Traffic | None = None,
    ) -> None:
        """`by_packet`: video goes to subscribers packet by packet as it arrives (`media.forwarding`, "Per-packet
        forwarding"); False: frame by frame, once each frame is whole (what the node did before; kept to compare).
        `ended`: where the traffic of the sources and sinks this plane closes is added up (the node's totals)."""
        self.room = room
        self.by_packet = by_packet
        self.codec = codec
        self._clock = clock
        self._ice = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in ice_servers]
        self._on_level = on_level
        self._on_feed = on_feed
        self.sources: dict[Feed, CoreSource] = {}
        self.sinks: set[RoomSink] = set()
        self.ended = Traffic() if ended is None else ended
        self._closing: set[asyncio.Task[None]] = set()
        self.push_errors = 0

    @property
    def video_codec(self) -> VideoCodec:
        return VideoCodec(self.codec.value)

    def new_peer(self) -> RTCPeerConnection:
        """max-bundle: with aiortc's default ("balanced": one transport per kind) a second m-line of a kind that
        joins the BUNDLE group in the same offer as the first is left on a transport that never starts (aiortc
        1.16 skips transceivers already marked bundled when it applies the group), so it carried nothing."""
        return RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))

    def prepare_publish(self, pc: RTCPeerConnection) -> None:
        for transceiver in pc.getTransceivers():
            force_codecs(transceiver, self.video_codec)

    def publish(self, feed: Feed, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        participant, source_kind = feed
        kind = "audio" if source_kind is Source.MICROPHONE else "video"

        async def request_keyframe() -> bool:
            return await tap.request_keyframe()

        source = CoreSource(
            f"{self.room}/{participant}/{source_kind.value}",
            kind,
            "opus" if kind == "audio" else self.codec.value,
            clock=self._clock,
            clock_rate=48_000 if kind == "audio" else 90_000,
            request_keyframe=request_keyframe if kind == "video" else None,
            by_packet=self.by_packet,
        )
        if kind == "audio":

            def on_frame(frame: ReceivedFrame) -> None:
                self._push(source, frame)
                self._on_level(participant, opus_level(len(frame.data)))

        else:

            def on_frame(frame: ReceivedFrame) -> None:
                self._push(source, frame)

        on_packet = (lambda packet: self._push_packet(source, packet)) if source.by_packet else None
        tap = tap_receiver(pc, track, on_frame, source.lost, on_packet)
        old = self.sources.get(feed)
        self.sources[feed] = source
        if old is not None:
            self._close_source(old)
        for sink in list(self.sinks):
            if sink.feed == feed:
                sink.rebind()
        self._on_feed(feed, True)

    def _push(self, source: CoreSource, frame: ReceivedFrame) -> None:
        """This runs inside aiortc's receive loop for the publisher: an exception from any subscriber's output
        would end that loop and with it the publisher's media, so it is logged and the frame is lost instead."""
        try:
            source.push(frame.data, frame.timestamp)
        except Exception:
            self.push_errors += 1
            if self.push_errors <= 3:
                logger.exception("%s: forwarding a frame of %s failed", self.room, source.name)

    def _push_packet(self, source: CoreSource, packet: ReceivedPacket) -> None:
        """As `_push`, for one RTP packet forwarded before its frame is complete."""
        try:
            source.push_packet(packet)
        except Exception:
            self.push_errors += 1
            if self.push_errors <= 3:
                logger.exception("%s: forwarding a packet of %s failed", self.room, source.name)

    def unpublish(self, feed: Feed) -> None:
        source = self.sources.pop(feed, None)
        if source is not None:
            self._close_source(source)
            self._on_feed(feed, False)

    def _close_source(self, source: CoreSource) -> None:
        self.ended.add_source(source.stats)
        task = asyncio.get_running_loop().create_task(source.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def add_sink(self, pc: RTCPeerConnection, kind: str) -> tuple[RTCRtpTransceiver, RoomSink]:
        """On the core's fast send path (`media.peers.add_direct_sink`): the frame's RTP payloads are made once
        for every subscriber of a source; per subscriber only the header and SRTP differ."""
        made: list[CoreSink] = []

        def make(output: Output) -> CoreSink:
            made.append(CoreSink(f"{self.room}/sink", kind, clock=self._clock, output=output))
            return made[0]

        add_direct_sink(pc, make, kind=kind, video_codec=self.video_codec)
        transceiver = pc.getTransceivers()[-1]
        sink = RoomSink(self, made[0])
        self.sinks.add(sink)
        return transceiver, sink

    def close(self) -> None:
        for sink in list(self.sinks):
            sink.close()
        for feed in list(self.sources):
            self.unpublish(feed)

    def traffic(self) -> Traffic:
        """What the room's current sources and sinks carried (the closed ones are in `ended`)."""
        now = Traffic()
        for source in self.sources.values():
            now.add_source(source.stats)
        for sink in self.sinks:
            now.add_sink(sink.core.stats)
        return now
