"""The adapter's per-packet seam (`tap_receiver(..., on_packet=...)`): every video RTP packet as it arrives, on
the frames' timeline, with the frame and keyframe starts recognised; with real aiortc peers (this fails if an
aiortc upgrade changes how its receiver hands packets to the jitter buffer) and packet by packet on its own."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import ReceivedFrame, ReceivedPacket, _packet_of, _Unwrapper
from tests.rtc.peers import Publisher, closing, h264_loop, loopback_only, negotiate, peer
from tests.waiting import eventually


@pytest.fixture(autouse=True)
def loopback() -> Iterator[None]:
    with loopback_only():
        yield


async def test_every_packet_is_handed_over_as_it_arrives_on_the_frames_timeline() -> None:
    publisher = Publisher(await h264_loop())
    node = peer()
    frames: list[ReceivedFrame] = []
    packets: list[ReceivedPacket] = []

    @node.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        adapter.tap_receiver(node, track, frames.append, on_packet=packets.append)

    async with closing(publisher.pc, node):
        await negotiate(publisher.pc, node)
        await eventually(lambda: node.connectionState == "connected")
        for _ in range(55):  # keyframes at 0 and 50
            publisher.push_frame()
            await eventually(lambda: len(frames) == len(publisher.sent), timeout=5)
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert sorted({p.timestamp for p in packets}) == [f.timestamp for f in frames] == [i * 3600 for i in range(55)]
    by_frame = {ts: [p for p in packets if p.timestamp == ts] for ts in (f.timestamp for f in frames)}
    assert all(parts[0].starts_frame and parts[-1].marker for parts in by_frame.values())
    assert all(not p.marker for parts in by_frame.values() for p in parts[:-1])
    assert [ts for ts, parts in by_frame.items() if parts[0].keyframe] == [0, 50 * 3600]
    assert not any(p.keyframe for ts, parts in by_frame.items() if ts not in (0, 50 * 3600) for p in parts)


def rtp(payload: bytes, seq: int = 1, ts: int = 0, marker: bool = False) -> RtpPacket:
    packet = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq, timestamp=ts)
    packet.payload = payload
    return packet


def test_vp8_packets_lose_their_descriptor_extension_and_keyframes_are_recognised() -> None:
    # X=1, S=1; I=1, L=1, T=1; a 15-bit picture id, TL0PICIDX, TID byte; then a key frame's payload header (P=0).
    key = _packet_of("VP8", rtp(bytes([0x90, 0xE0, 0x81, 0x23, 0x07, 0x40, 0x10, 0xAA, 0xBB])), 5)
    assert key is not None
    assert key.payload == bytes([0x10, 0x10, 0xAA, 0xBB]) and key.starts_frame and key.keyframe
    assert key.timestamp == 5
    # A 7-bit picture id only, a delta frame (P=1).
    delta = _packet_of("VP8", rtp(bytes([0x90, 0x80, 0x05, 0x11, 0xCC])), 0)
    assert delta is not None and delta.payload == bytes([0x10, 0x11, 0xCC])
    assert delta.starts_frame and not delta.keyframe
    # A continuation packet with no extension is forwarded as it is (the same object).
    payload = bytes([0x00, 0x10, 0x00])
    middle = _packet_of("VP8", rtp(payload), 0)
    assert middle is not None and middle.payload is payload and not middle.starts_frame
    assert _packet_of("VP8", rtp(bytes([0x90, 0x80])), 0) is None, "a descriptor with nothing after it"


def test_h264_keyframe_starts_are_an_sps_or_an_idr_start() -> None:
    stap_a_sps = bytes([0x18, 0x00, 0x04, 0x67, 0x42, 0x00, 0x1F, 0x00, 0x02, 0x68, 0xCE])
    fu_a_idr_start = bytes([0x7C, 0x85, 0x88, 0x00])
    fu_a_idr_middle = bytes([0x7C, 0x05, 0x11, 0x00])
    fu_a_p_start = bytes([0x5C, 0x81, 0x9A, 0x00])
    flags = [
        (p.starts_frame, p.keyframe)
        for p in (_packet_of("H264", rtp(x), 0) for x in (stap_a_sps, fu_a_idr_start, fu_a_idr_middle, fu_a_p_start))
        if p is not None
    ]
    assert flags == [(True, True), (True, True), (False, False), (True, False)]


def test_timestamps_unwrap_and_a_late_packet_does_not_move_the_origin() -> None:
    unwrap = _Unwrapper()
    assert unwrap.map(0xFFFFF000) == 0
    assert unwrap.map(0x00000E00) == 0x1E00  # wrapped
    assert unwrap.map(0xFFFFF800) == 0x800  # a late retransmission from before the wrap
    assert unwrap.map(0x00001C00) == 0x2C00
