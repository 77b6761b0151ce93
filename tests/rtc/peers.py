"""Real aiortc peers on loopback for the seam and forwarding tests: a publisher that sends a pre-encoded H.264
loop (the simulator's) without encoding, offer/answer between two connections, and a subscriber that counts what
it receives without decoding (through the adapter's tap, so it compares frames byte for byte)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import LoopbackCandidates, ReceivedFrame, ReceiverTap, VideoCodec
from rtc.packet_track import PacketTrack
from simulator.video import SUB, EncodedLoop, get_loop
from tests.waiting import eventually

CACHE_DIR = Path(__file__).resolve().parents[2] / "var" / "cache" / "test-loops"
START_CODE = b"\x00\x00\x00\x01"


def peer() -> RTCPeerConnection:
    """A connection that never reaches outside the machine (no STUN server; loopback candidates in tests)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    try:
        yield
    finally:
        adapter.set_loopback_candidates(LoopbackCandidates.DEFAULT)


async def h264_loop() -> EncodedLoop:
    """The simulator's 640x360 25 fps loop (2 s GOP), cached on disk between runs."""
    return await get_loop("rtc-test", SUB, CACHE_DIR)


def annexb(loop: EncodedLoop, index: int) -> bytes:
    """Frame `index` of the loop as one Annex-B access unit (what the H.264 depayloader yields)."""
    frame = loop.frames[index % len(loop.frames)]
    return b"".join(START_CODE + nal for nal in frame.nals)


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


@dataclass
class Publisher:
    """An aiortc peer sending the loop's frames as they are, one per `push_frame`, or paced at 25 fps."""

    loop: EncodedLoop
    pc: RTCPeerConnection = field(default_factory=peer)
    track: PacketTrack = field(default_factory=lambda: PacketTrack("video"))
    sent: list[bytes] = field(default_factory=list)
    plis: int = 0
    index: int = 0

    def __post_init__(self) -> None:
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        adapter.force_codecs(transceiver, VideoCodec.H264)
        sender = transceiver.sender

        def counted() -> None:
            self.plis += 1

        adapter.intercept_keyframe_requests(sender, counted)

    def push_frame(self) -> bytes:
        data = annexb(self.loop, self.index)
        assert self.track.push(data, self.index * 3600)  # 25 fps on the 90 kHz clock
        self.sent.append(data)
        self.index += 1
        return data

    async def run(self, fps: float = 25.0) -> None:
        """Push frames paced at `fps` until cancelled (pacing a source, not waiting for a condition)."""
        while True:
            self.push_frame()
            await asyncio.sleep(1 / fps)


@dataclass
class Counter:
    """A subscriber that takes frames before its decoder and keeps them."""

    pc: RTCPeerConnection = field(default_factory=peer)
    frames: list[ReceivedFrame] = field(default_factory=list)
    gaps: int = 0
    tap: ReceiverTap | None = None

    def __post_init__(self) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tap = adapter.tap_receiver(self.pc, track, self.frames.append, self.on_gap)

    def on_gap(self) -> None:
        self.gaps += 1


@contextlib.asynccontextmanager
async def closing(*pcs: RTCPeerConnection) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for pc in pcs:
            await pc.close()


class RetransmissionCounter:
    """Counts, per original sequence number, the RTX copies that reach the first receiver of `pc` (before the
    receiver sees them), notes the media SSRC and the sequence numbers of the media packets, and asks for a packet
    again and again as a receiver that repeats its NACKs would."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.receiver = pc.getTransceivers()[0].receiver
        self.rtx: dict[int, int] = {}
        self.ssrc: int | None = None
        self.seqs: list[int] = []
        transport = self.receiver.transport
        handle = transport._handle_rtp_data

        async def counting(data: bytes, arrival_time_ms: int) -> None:
            packet = RtpPacket.parse(data)
            if self.ssrc is None or packet.ssrc == self.ssrc:
                self.ssrc = packet.ssrc
                self.seqs.append(packet.sequence_number)
            else:
                original = int.from_bytes(packet.payload[:2], "big")
                self.rtx[original] = self.rtx.get(original, 0) + 1
            await handle(data, arrival_time_ms)

        transport._handle_rtp_data = counting  # type: ignore[method-assign]

    async def nack_repeatedly(self, seq: int, times: int) -> int:
        """NACK `seq` `times` times in a row; how many copies of it came back. RTCP is handled in order, so once
        the copy asked for by a last NACK of another packet is back, every NACK before it was answered."""
        assert self.ssrc is not None and len(self.seqs) >= 2
        fresh = next(s for s in reversed(self.seqs) if s != seq and s not in self.rtx)
        for _ in range(times):
            await self.receiver._send_rtcp_nack(self.ssrc, [seq])
        await self.receiver._send_rtcp_nack(self.ssrc, [fresh])
        await eventually(lambda: self.rtx.get(fresh, 0) == 1)
        return self.rtx.get(seq, 0)
