"""Wiring the forwarding core to aiortc peer connections: a publisher's track into a `Source`, a `Sink` into a
subscriber's connection. The node (WHIP, WHEP, meeting signalling) owns the connections; this only connects them.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack

from common.clock import Clock
from media.direct import DirectOutput
from media.forwarding import Output, Sink, Source
from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import ReceivedFrame, ReceiverTap, VideoCodec
from rtc.packet_track import PacketTrack


def source_from_track(
    pc: RTCPeerConnection,
    track: MediaStreamTrack,
    *,
    name: str,
    clock: Clock,
    gop_cache: bool = True,
    keyframe_min_interval: float = 0.3,
    by_packet: bool = False,
) -> tuple[Source, ReceiverTap]:
    """A `Source` fed with the track's encoded frames. Call it inside `pc.on("track")` (see `tap_receiver`).
    `by_packet`: with each RTP packet as it arrives too, so that direct sinks forward packet by packet.

    The source asks the publisher for keyframes with PLIs through the tap; the tap's `ssrc` is the publisher's."""
    codec, clock_rate = adapter.negotiated_codec(adapter.transceiver_of_track(pc, track))
    tap: ReceiverTap | None = None

    async def request_keyframe() -> bool:
        return await tap.request_keyframe() if tap is not None else False

    source = Source(
        name,
        track.kind,
        codec,
        clock=clock,
        clock_rate=clock_rate,
        request_keyframe=request_keyframe,
        gop_cache=gop_cache,
        keyframe_min_interval=keyframe_min_interval,
        by_packet=by_packet,
    )

    def on_frame(frame: ReceivedFrame) -> None:
        source.push(frame.data, frame.timestamp)

    tap = adapter.tap_receiver(pc, track, on_frame, source.lost, source.push_packet if source.by_packet else None)
    return source, tap


def add_sink(pc: RTCPeerConnection, sink: Sink, *, video_codec: VideoCodec = VideoCodec.H264) -> RTCRtpSender:
    """Send the sink's frames on `pc`: after the subscriber's offer was applied and before `createAnswer` (or
    before `createOffer` when the node offers). Forces the codec, passes the subscriber's PLI/FIR to the sink, and
    answers its NACKs through a retransmission gate."""
    if sink.track is None:
        raise ValueError("this sink has its own output, not a track")
    sender = pc.addTrack(sink.track)
    adapter.force_codecs(adapter.transceiver_of_track(pc, sink.track), video_codec)
    adapter.intercept_keyframe_requests(sender, sink.keyframe_requested)
    adapter.gate_retransmissions(sender)
    return sender


def add_direct_sink(
    pc: RTCPeerConnection,
    make_sink: Callable[[Output], Sink],
    *,
    kind: str = "video",
    video_codec: VideoCodec = VideoCodec.H264,
    max_frames: int = 200,
    pace_bps: int | None = 20_000_000,
) -> Sink:
    """Like `add_sink`, on the fast send path (`media.direct`): `make_sink(output)` makes the sink with the given
    output, e.g. `lambda out: relay.add_viewer(viewer_id, output=out)` or `lambda out: Sink(..., output=out)`.

    Call it at the same point as `add_sink` (after the subscriber's offer, before `createAnswer`)."""
    placeholder = PacketTrack(kind)
    pc.addTrack(placeholder)
    transceiver = adapter.transceiver_of_track(pc, placeholder)
    adapter.force_codecs(transceiver, video_codec)
    codec = "opus" if kind == "audio" else video_codec.value
    output = DirectOutput(adapter.DirectSender(transceiver), codec, max_frames=max_frames, pace_bps=pace_bps)
    sink = make_sink(output)
    if sink.kind != kind:
        raise ValueError(f"make_sink made a {sink.kind} sink for a {kind} transceiver")
    output.keyframe_handler = sink.keyframe_requested
    adapter.intercept_keyframe_requests(transceiver.sender, output.keyframe_requested)
    return sink
