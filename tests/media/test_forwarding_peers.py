"""The forwarding core between real aiortc peers on loopback: an H.264 publisher, the node's source and sinks
(`media.peers`), and subscribers that take frames before their decoder and compare them with what was sent."""

from __future__ import annotations

import contextlib
import fractions
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import av
import numpy
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from common.clock import SystemClock
from media.direct import DirectOutput
from media.forwarding import Sink, Source
from media.peers import add_direct_sink, add_sink, source_from_track
from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import VideoCodec
from rtc.packet_track import PacketTrack
from tests.rtc.peers import (
    Counter,
    Publisher,
    RetransmissionCounter,
    closing,
    h264_loop,
    loopback_only,
    negotiate,
    peer,
)
from tests.waiting import eventually, eventually_true


@pytest.fixture(autouse=True)
def loopback() -> Iterator[None]:
    with loopback_only():
        yield


class Node:
    """The node's side: one publisher connection feeding a source, one connection per subscriber."""

    def __init__(self, by_packet: bool = False) -> None:
        self.clock = SystemClock()
        self.pc = peer()
        self.source: Source | None = None
        self.subscribers: list[RTCPeerConnection] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.source, _ = source_from_track(self.pc, track, name="cam-1", clock=self.clock, by_packet=by_packet)

    async def connect(self, publisher: Publisher) -> None:
        """Negotiate with the publisher and wait until its track feeds `source` over a connected peer."""
        await negotiate(publisher.pc, self.pc)
        await eventually(lambda: self.source is not None and self.pc.connectionState == "connected")

    async def subscribe(self, counter: Counter, path: str = "stock") -> Sink:
        """A WHEP-style exchange: the subscriber offers to receive video, the node answers with a sink."""
        assert self.source is not None
        counter.pc.addTransceiver("video", direction="recvonly")
        pc = peer()
        self.subscribers.append(pc)
        await counter.pc.setLocalDescription(await counter.pc.createOffer())
        await pc.setRemoteDescription(counter.pc.localDescription)
        if path in ("direct", "packets"):
            sink = add_direct_sink(pc, lambda out: Sink("viewer", "video", clock=self.clock, output=out))
        else:
            sink = Sink("viewer", "video", clock=self.clock)
            add_sink(pc, sink)
        await pc.setLocalDescription(await pc.createAnswer())
        await counter.pc.setRemoteDescription(pc.localDescription)
        sink.point(self.source)
        return sink

    async def close(self) -> None:
        if self.source is not None:
            await self.source.close()
        for pc in [self.pc, *self.subscribers]:
            await pc.close()


@contextlib.asynccontextmanager
async def one_viewer(path: str) -> AsyncIterator[tuple[Publisher, Node, Counter, Sink]]:
    """A publisher, the node and one connected subscriber on `path`; everything closed afterwards."""
    publisher = Publisher(await h264_loop())
    node = Node(by_packet=path == "packets")
    viewer = Counter()
    async with closing(publisher.pc, viewer.pc):
        try:
            await node.connect(publisher)
            sink = await node.subscribe(viewer, path)
            await eventually(lambda: viewer.pc.connectionState == "connected")
            yield publisher, node, viewer, sink
        finally:
            await node.close()


async def feed(publisher: Publisher, count: int, until: Callable[[], bool] | None = None) -> None:
    """Send `count` frames, each once the previous one reached every counter (no pacing needed)."""
    for _ in range(count):
        publisher.push_frame()
        if until is not None:
            await eventually(until, timeout=5)


def drop_one_incoming(pc: RTCPeerConnection, nth: int) -> dict[str, int]:
    """Lose the `nth` RTP packet that reaches `pc` (before its receiver sees it); count what arrives after."""
    transport = pc.getTransceivers()[0].receiver.transport
    handle: Callable[[bytes, int], Awaitable[None]] = transport._handle_rtp_data
    seen = {"packets": 0, "dropped_seq": -1, "payload_types": 0}
    types: set[int] = set()

    async def lossy(data: bytes, arrival_time_ms: int) -> None:
        packet = RtpPacket.parse(data)
        seen["packets"] += 1
        types.add(packet.payload_type)
        seen["payload_types"] = len(types)
        if seen["packets"] == nth:
            seen["dropped_seq"] = packet.sequence_number
            return
        await handle(data, arrival_time_ms)

    transport._handle_rtp_data = lossy  # type: ignore[method-assign]
    return seen


async def every_frame_despite_the_loss(publisher: Publisher, viewer: Counter, seen: dict[str, int]) -> None:
    """Feed ten frames after `drop_one_incoming` was set: the lost packet comes back as RTX (asked for by a NACK,
    noticed when the packet after it arrives, so the frames are fed without waiting in step) and the viewer gets
    every frame as sent, without a gap."""
    await feed(publisher, 10)
    await eventually(lambda: len(viewer.frames) == len(publisher.sent))
    assert seen["dropped_seq"] >= 0
    assert seen["payload_types"] == 2, "the lost packet came back as RTX"
    assert [f.data for f in viewer.frames] == publisher.sent
    assert viewer.gaps == 0


PATHS = pytest.mark.parametrize("path", ["stock", "direct", "packets"])
"""stock: aiortc's sender; direct: the fast send path, frame by frame; packets: the fast path, packet by packet."""


@PATHS
async def test_subscribers_get_the_publishers_frames_as_sent_and_a_late_one_starts_from_the_cache(path: str) -> None:
    loop = await h264_loop()
    publisher = Publisher(loop)
    node = Node(by_packet=path == "packets")
    early, late = Counter(), Counter()
    async with closing(publisher.pc, early.pc, late.pc):
        try:
            await node.connect(publisher)
            assert node.source is not None
            early_sink = await node.subscribe(early, path)
            await eventually(lambda: early.pc.connectionState == "connected")
            # 60 frames: the keyframe at 0, at 50, and ten after it.
            await feed(publisher, 60, until=lambda: len(early.frames) == len(publisher.sent))
            assert [f.data for f in early.frames] == publisher.sent
            late_sink = await node.subscribe(late, path)
            # Before any new frame: the late subscriber gets the GOP cache (keyframe 50 and the nine after it).
            await eventually(lambda: len(late.frames) == 10)
            assert [f.data for f in late.frames] == publisher.sent[50:60]
            await feed(publisher, 5, until=lambda: len(late.frames) + 50 == len(early.frames) == len(publisher.sent))
            assert [f.data for f in late.frames] == publisher.sent[50:65]
            assert [f.data for f in early.frames] == publisher.sent
            # The subscribers see one continuous 25 fps timeline each.
            assert all(b.timestamp - a.timestamp == 3600 for a, b in zip(early.frames, early.frames[1:], strict=False))
            assert late_sink.stats.cached_frames_out == 10
            assert early_sink.stats.frames_out == 65 and early_sink.stats.drops == 0
            stats = node.source.stats
            assert stats.frames_in == 65 and stats.keyframes_in == 2
            assert stats.bytes_in == sum(len(d) for d in publisher.sent)
        finally:
            await node.close()


@PATHS
async def test_a_subscribers_pli_reaches_the_publisher(path: str) -> None:
    async with one_viewer(path) as (publisher, node, viewer, sink):
        await feed(publisher, 3, until=lambda: len(viewer.frames) == len(publisher.sent))
        assert viewer.tap is not None
        assert await viewer.tap.request_keyframe()
        await eventually(lambda: publisher.plis == 1)
        assert sink.stats.keyframe_requests == 1
        assert node.source is not None and node.source.stats.keyframe_requests_out == 1


@PATHS
async def test_a_packet_lost_to_a_subscriber_is_retransmitted_from_the_senders_history(path: str) -> None:
    """NACK and RTX for forwarded packets: aiortc's sender keeps what it sent and answers the subscriber's NACK."""
    async with one_viewer(path) as (publisher, _node, viewer, _sink):
        seen = drop_one_incoming(viewer.pc, nth=5)
        await every_frame_despite_the_loss(publisher, viewer, seen)


@pytest.mark.parametrize("path", ["direct", "packets"])
async def test_a_packet_nacked_over_and_over_is_resent_a_few_times_at_most(path: str) -> None:
    """A subscriber that asks for the same packet ten times in a row gets it again at most three times (the
    retransmission gate): a receiver that falls behind and repeats its whole missing list must not turn the node
    into a retransmitter."""
    async with one_viewer(path) as (publisher, _node, viewer, _sink):
        seen = RetransmissionCounter(viewer.pc)
        await feed(publisher, 10)
        await eventually(lambda: len(viewer.frames) == len(publisher.sent))
        assert 1 <= await seen.nack_repeatedly(seen.seqs[-3], times=10) <= 3


@PATHS
async def test_audio_is_forwarded_packet_for_packet(path: str) -> None:
    """Opus: every packet is a frame, released at once and never gated; the payloads arrive as sent."""
    publisher_pc = peer()
    track = PacketTrack("audio")
    adapter.force_codecs(publisher_pc.addTransceiver(track, direction="sendonly"), VideoCodec.H264)
    node_pc = peer()
    sources: list[Source] = []
    clock = SystemClock()

    @node_pc.on("track")
    def on_track(remote: MediaStreamTrack) -> None:
        sources.append(source_from_track(node_pc, remote, name="mic", clock=clock, by_packet=path == "packets")[0])

    listener = Counter()
    viewer_pc = peer()
    async with closing(publisher_pc, node_pc, listener.pc, viewer_pc):
        await negotiate(publisher_pc, node_pc)
        await eventually(lambda: bool(sources) and node_pc.connectionState == "connected")
        source = sources[0]
        assert (source.kind, source.codec, source.clock_rate) == ("audio", "opus", 48_000)
        listener.pc.addTransceiver("audio", direction="recvonly")
        await listener.pc.setLocalDescription(await listener.pc.createOffer())
        await viewer_pc.setRemoteDescription(listener.pc.localDescription)
        if path in ("direct", "packets"):
            sink = add_direct_sink(viewer_pc, lambda out: Sink("ear", "audio", clock=clock, output=out), kind="audio")
        else:
            sink = Sink("ear", "audio", clock=clock)
            add_sink(viewer_pc, sink)
        sink.point(source)
        await viewer_pc.setLocalDescription(await viewer_pc.createAnswer())
        await listener.pc.setRemoteDescription(viewer_pc.localDescription)
        await eventually(lambda: listener.pc.connectionState == "connected")
        sent = [bytes([0xFC, i]) + bytes(range(i % 50 + 10)) for i in range(20)]
        for i, payload in enumerate(sent):
            track.push(payload, i * 960)
            await eventually(lambda i=i: len(listener.frames) == i + 1, timeout=5)  # type: ignore[misc]
        assert [f.data for f in listener.frames] == sent
        assert {f.codec for f in listener.frames} == {"opus"}
        assert [f.timestamp for f in listener.frames] == [i * 960 for i in range(20)]
        await source.close()


def vp8_frames(count: int) -> list[bytes]:
    """`count` VP8 frames (320x240, a keyframe every 10) that change from one to the next."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 25)
    ctx.gop_size = 10
    ctx.options = {"deadline": "realtime", "cpu-used": "8"}
    frames: list[bytes] = []
    for i in range(count):
        picture = numpy.zeros((240, 320, 3), numpy.uint8)
        picture[:, (i * 10) % 320 :] = (255, i * 8 % 256, 0)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frames.extend(bytes(p) for p in ctx.encode(frame))
    frames.extend(bytes(p) for p in ctx.encode(None))
    return frames


@PATHS
async def test_vp8_is_forwarded_frame_for_frame_and_a_late_subscriber_starts_on_a_keyframe(path: str) -> None:
    frames = vp8_frames(25)
    publisher_pc = peer()
    track = PacketTrack("video")
    adapter.force_codecs(publisher_pc.addTransceiver(track, direction="sendonly"), VideoCodec.VP8)
    node_pc = peer()
    sources: list[Source] = []
    clock = SystemClock()

    @node_pc.on("track")
    def on_track(remote: MediaStreamTrack) -> None:
        sources.append(source_from_track(node_pc, remote, name="cam-vp8", clock=clock, by_packet=path == "packets")[0])

    viewer = Counter()
    viewer_pc = peer()
    async with closing(publisher_pc, node_pc, viewer.pc, viewer_pc):
        await negotiate(publisher_pc, node_pc)
        await eventually(lambda: bool(sources) and node_pc.connectionState == "connected")
        source = sources[0]
        assert source.codec == "VP8"
        for i in range(5):  # the keyframe at 0 and four after it, before anyone watches
            track.push(frames[i], i * 3600)
        await eventually(lambda: source.stats.frames_in == 5)
        transceiver = viewer.pc.addTransceiver("video", direction="recvonly")
        adapter.force_codecs(transceiver, VideoCodec.VP8)
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        await viewer_pc.setRemoteDescription(viewer.pc.localDescription)
        if path in ("direct", "packets"):
            sink = add_direct_sink(
                viewer_pc, lambda out: Sink("v", "video", clock=clock, output=out), video_codec=VideoCodec.VP8
            )
        else:
            sink = Sink("v", "video", clock=clock)
            add_sink(viewer_pc, sink, video_codec=VideoCodec.VP8)
        sink.point(source)
        await viewer_pc.setLocalDescription(await viewer_pc.createAnswer())
        await viewer.pc.setRemoteDescription(viewer_pc.localDescription)
        await eventually(lambda: len(viewer.frames) == 5)  # the GOP cache
        for i in range(5, 25):
            track.push(frames[i], i * 3600)
        await eventually(lambda: len(viewer.frames) == 25)
        assert [f.data for f in viewer.frames] == frames
        assert {f.codec for f in viewer.frames} == {"VP8"}
        await source.close()


@pytest.mark.parametrize("path", ["direct", "packets"])
async def test_the_direct_path_keeps_the_sender_reports_in_step(path: str) -> None:
    """RTCP sender reports on the direct path count the packets and bytes it sent (aiortc's sender writes them
    from counters the direct path keeps up to date): a subscriber's stats see them."""
    async with one_viewer(path) as (publisher, _node, viewer, sink):
        await feed(publisher, 10, until=lambda: len(viewer.frames) == len(publisher.sent))
        output = sink._out
        assert isinstance(output, DirectOutput)
        receiver = viewer.pc.getReceivers()[0]
        reported: list[int] = []

        async def sender_report() -> bool:
            stats = await receiver.getStats()
            reported[:] = [s.packetsSent for s in stats.values() if s.type == "remote-outbound-rtp"]
            return bool(reported) and reported[0] > 0

        await eventually_true(sender_report, timeout=5)
        assert 10 <= reported[0] <= output.packets_sent  # ten frames, each in one or more packets


@pytest.mark.parametrize("path", ["direct", "packets"])
async def test_a_sink_pointed_before_the_answer_waits_and_the_publishers_other_subscribers_keep_receiving(
    path: str,
) -> None:
    """The node adds an m-line for a subscriber and points its sink at once, before the subscriber's answer gave the
    direct output a codec: frames are dropped (counted) for that sink only, then it starts on a keyframe."""
    publisher = Publisher(await h264_loop())
    node = Node(by_packet=path == "packets")
    other, renegotiated = Counter(), Counter()
    async with closing(publisher.pc, other.pc, renegotiated.pc):
        try:
            await node.connect(publisher)
            assert node.source is not None
            await node.subscribe(other, path)
            await node.subscribe(renegotiated, path)
            await eventually(
                lambda: other.pc.connectionState == "connected" and renegotiated.pc.connectionState == "connected"
            )
            await feed(publisher, 3, until=lambda: len(other.frames) == len(renegotiated.frames) == len(publisher.sent))
            pc = node.subscribers[1]  # connected: the new m-line's transport is up, only its codec is missing
            early = add_direct_sink(pc, lambda out: Sink("early", "video", clock=node.clock, output=out))
            early.point(node.source)  # the GOP cache (3 frames) and the live frames find no codec
            await feed(publisher, 5, until=lambda: len(other.frames) == len(renegotiated.frames) == len(publisher.sent))
            assert early.stats.unnegotiated == 8 and early.stats.frames_out == 0
            assert [f.data for f in other.frames] == publisher.sent
            plis = publisher.plis
            await negotiate(pc, renegotiated.pc)  # the node's offer, the subscriber's answer: now the codec is known
            await feed(publisher, 1, until=lambda: len(other.frames) == len(publisher.sent))
            # Ready but not on a keyframe: it waits for one and asks the publisher.
            await eventually(lambda: publisher.plis > plis)
            assert early.stats.frames_out == 0 and early.stats.gated == 1
            # The loop's next keyframe is frame 50: from there the sink sends, the other subscribers never stopped.
            await feed(publisher, 52 - len(publisher.sent), until=lambda: len(other.frames) == len(publisher.sent))
            await eventually(lambda: early.stats.frames_out == 2)
            await eventually(lambda: len(renegotiated.frames) == len(publisher.sent) + 2)
            both = [f.data for f in renegotiated.frames]  # its two tracks: the first m-line's and the new one's
            assert [both.count(data) for data in publisher.sent[48:52]] == [1, 1, 2, 2]
            assert [f.data for f in other.frames] == publisher.sent
            assert early.stats.unnegotiated == 8 and early.stats.gated == 42  # frames 8 to 49
        finally:
            await node.close()


def record_incoming(pc: RTCPeerConnection, hold: Callable[[RtpPacket], bool] | None = None) -> list[RtpPacket]:
    """Every RTP packet that reaches `pc` (decrypted, as sent), in arrival order; with `hold`, the packets for
    which it returns True are kept back (not passed to the receiver) in `held` until `release` is called."""
    transport = pc.getTransceivers()[0].receiver.transport
    handle: Callable[[bytes, int], Awaitable[None]] = transport._handle_rtp_data
    seen: list[RtpPacket] = []

    async def recording(data: bytes, arrival_time_ms: int) -> None:
        packet = RtpPacket.parse(data)
        seen.append(packet)
        if hold is not None and hold(packet):
            return
        await handle(data, arrival_time_ms)

    transport._handle_rtp_data = recording  # type: ignore[method-assign]
    return seen


def contiguous(packets: list[RtpPacket], media_pt: int) -> bool:
    seqs = [p.sequence_number for p in packets if p.payload_type == media_pt]
    return all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


async def test_packet_by_packet_a_frame_goes_out_before_it_is_whole() -> None:
    """The node holds back the last packet of a frame (and its retransmissions): on the per-packet path the
    subscriber already has the frame's other packets, although the node has not got the frame; once the packet
    comes, the frame completes at the subscriber, byte for byte."""
    publisher = Publisher(await h264_loop())
    node = Node(by_packet=True)
    viewer = Counter()
    holding = {"on": False}
    held: list[RtpPacket] = []

    def hold(packet: RtpPacket) -> bool:
        if holding["on"] and (packet.marker or packet.payload_type != media_pt[0]):
            held.append(packet)
            return True
        return False

    media_pt = [0]
    async with closing(publisher.pc, viewer.pc):
        try:
            await node.connect(publisher)
            incoming = record_incoming(node.pc, hold)
            sink = await node.subscribe(viewer, "packets")
            assert sink.by_packet
            await eventually(lambda: viewer.pc.connectionState == "connected")
            await feed(publisher, 50, until=lambda: len(viewer.frames) == len(publisher.sent))
            media_pt[0] = incoming[-1].payload_type
            arriving = record_incoming(viewer.pc)
            assert node.source is not None
            frames_in = node.source.stats.frames_in
            holding["on"] = True
            publisher.push_frame()  # frame 50: a keyframe of several packets
            await eventually(lambda: len(held) >= 1)
            first_ts = held[0].timestamp
            parts = [p for p in incoming if p.timestamp == first_ts and p.payload_type == media_pt[0]]
            assert len(parts) >= 3, "the frame spans several packets"
            # Everything but the held last packet went through, and the node has no whole frame yet.
            await eventually(lambda: len(arriving) == len(parts) - 1)
            assert node.source.stats.frames_in == frames_in and len(viewer.frames) == 50
            holding["on"] = False
            original = held[0]
            await node.pc.getTransceivers()[0].receiver.transport._handle_rtp_data(original.serialize(), 0)
            await eventually(lambda: len(viewer.frames) == 51)
            assert [f.data for f in viewer.frames] == publisher.sent
            assert node.source.stats.frames_in == frames_in + 1
        finally:
            await node.close()


async def test_packet_by_packet_sequence_numbers_stay_contiguous_across_starts_and_repoints() -> None:
    """A subscriber's sequence numbers have no jump from its start on the GOP cache (packetized frames) to the
    live packets, nor across a re-point to another publisher gated to its keyframe, nor back again."""
    first, second = Publisher(await h264_loop()), Publisher(await h264_loop())
    one, two = Node(by_packet=True), Node(by_packet=True)
    viewer = Counter()
    async with closing(first.pc, second.pc, viewer.pc):
        try:
            await negotiate(first.pc, one.pc)
            await negotiate(second.pc, two.pc)
            await eventually(lambda: one.source is not None and two.source is not None)
            await eventually(lambda: one.pc.connectionState == two.pc.connectionState == "connected")
            assert one.source is not None and two.source is not None
            await feed(first, 5, until=lambda: one.source is not None and one.source.stats.frames_in == len(first.sent))
            sink = await one.subscribe(viewer, "packets")  # starts on the cache: frames 0-4
            await eventually(lambda: viewer.pc.connectionState == "connected")
            arriving = record_incoming(viewer.pc)
            await eventually(lambda: len(viewer.frames) == 5)
            await feed(first, 5, until=lambda: len(viewer.frames) == len(first.sent))
            await feed(
                second, 10, until=lambda: two.source is not None and two.source.stats.frames_in == len(second.sent)
            )
            sink.point(two.source, use_cache=False)  # gated: second's next keyframe is its frame 50
            await feed(
                second, 40, until=lambda: two.source is not None and two.source.stats.frames_in == len(second.sent)
            )
            assert len(viewer.frames) == 10 and sink.stats.gated == 40
            await feed(second, 5, until=lambda: len(viewer.frames) == 10 + len(second.sent) - 50)
            assert [f.data for f in viewer.frames[10:]] == second.sent[50:55]
            sink.point(one.source)  # back, on first's cache (frames 0-9) then live
            await eventually(lambda: len(viewer.frames) == 25)
            await feed(first, 3, until=lambda: len(viewer.frames) == 25 + len(first.sent) - 10)
            assert [f.data for f in viewer.frames[25:]] == first.sent[10:13]
            pt = arriving[0].payload_type
            assert contiguous(arriving, pt), [p.sequence_number for p in arriving]
            stamps = [f.timestamp for f in viewer.frames]
            assert stamps == sorted(stamps), "one timeline across the re-points"
            assert viewer.gaps == 0
        finally:
            await one.close()
            await two.close()


@PATHS
async def test_a_packet_lost_upstream_is_asked_for_from_the_publisher_and_forwarded(path: str) -> None:
    """The node loses a publisher's packet: its receiver NACKs the publisher, the RTX copy comes, and the
    subscriber gets every frame as sent (on the per-packet path the late copy fills its place in the stream)."""
    async with one_viewer(path) as (publisher, node, viewer, _sink):
        await feed(publisher, 2, until=lambda: len(viewer.frames) == len(publisher.sent))
        seen = drop_one_incoming(node.pc, nth=3)
        await every_frame_despite_the_loss(publisher, viewer, seen)
        assert node.source is not None and node.source.stats.gaps == 0


async def test_packet_by_packet_a_start_packet_that_comes_late_brings_the_ones_after_it() -> None:
    """A sink waits for a keyframe; the keyframe's first packet reaches the node after the rest of the frame (held
    back here, as a reordering or an RTX copy would be): the sink starts on it and sends the packets it passed over
    while waiting, so the subscriber gets the whole keyframe and no hole in its sequence numbers."""
    publisher = Publisher(await h264_loop())
    node = Node(by_packet=True)
    viewer = Counter()
    state = {"holding": False, "media_pt": -1}
    held: list[RtpPacket] = []

    def hold(packet: RtpPacket) -> bool:
        if not state["holding"]:
            return False
        if packet.payload_type != state["media_pt"]:
            held.append(packet)  # a retransmission of a held packet
            return True
        forwardable = adapter._packet_of("H264", packet, 0)
        if forwardable is not None and forwardable.keyframe:
            held.append(packet)  # the keyframe's first packets (parameter sets, the IDR slice's start)
            return True
        return False

    async with closing(publisher.pc, viewer.pc):
        try:
            await node.connect(publisher)
            incoming = record_incoming(node.pc, hold)
            sink = await node.subscribe(viewer, "packets")
            await eventually(lambda: viewer.pc.connectionState == "connected")
            await feed(publisher, 50, until=lambda: len(viewer.frames) == len(publisher.sent))
            state["media_pt"] = incoming[-1].payload_type
            arriving = record_incoming(viewer.pc)
            sink.point(None)
            sink.point(node.source, use_cache=False)  # waits for a keyframe: frame 50
            state["holding"] = True
            publisher.push_frame()
            await eventually(
                lambda: any(p.marker and p.timestamp == held[0].timestamp for p in incoming) if held else False
            )
            assert sink.waiting_for_keyframe and arriving == []
            state["holding"] = False
            transport = node.pc.getTransceivers()[0].receiver.transport
            for original in [p for p in held if p.payload_type == state["media_pt"]]:
                await transport._handle_rtp_data(original.serialize(), 0)
            await eventually(lambda: len(viewer.frames) == 51)
            assert viewer.frames[50].data == publisher.sent[50]
            seqs = sorted(p.sequence_number for p in arriving if p.payload_type == arriving[0].payload_type)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no hole (arrival order may differ)"
        finally:
            await node.close()
