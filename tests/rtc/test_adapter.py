"""Every aiortc seam of `rtc.aiortc_adapter`, with real aiortc peers on loopback: these fail when an aiortc
upgrade moves one of the private attributes the adapter relies on."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import aioice.ice
import aiortc
import pytest
from aiortc import rtcdtlstransport
from aiortc.codecs.h264 import h264_depayload
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import AdapterError, LoopbackCandidates, VideoCodec
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
from tests.waiting import eventually


@pytest.fixture(autouse=True)
def loopback() -> Iterator[None]:
    with loopback_only():
        yield


def test_the_adapter_refuses_another_aiortc_version() -> None:
    """Importing the adapter under another aiortc version fails at once, naming both versions."""
    assert aiortc.__version__ == adapter.PINNED_AIORTC
    code = "import aiortc; aiortc.__version__ = '1.17.0'; import rtc.aiortc_adapter"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "AdapterError: rtc.aiortc_adapter is written for aiortc 1.16.0, found 1.17.0" in result.stderr


async def test_encoded_frames_are_taken_before_the_decoder_byte_for_byte_and_on_their_marker() -> None:
    """The publisher sends pre-encoded H.264 without encoding; the receiving side gets each access unit exactly as
    sent, each one before the next is sent (released on its marker bit), and its decoder gets nothing."""
    publisher = Publisher(await h264_loop())
    node = Counter()
    async with closing(publisher.pc, node.pc):
        await negotiate(publisher.pc, node.pc)
        await eventually(lambda: node.pc.connectionState == "connected")
        for _ in range(60):  # past a keyframe interval (50 frames)
            publisher.push_frame()
            # The frame arrives without the next one being sent: the stock jitter buffer would hold it.
            await eventually(lambda: len(node.frames) == len(publisher.sent), timeout=5)
        assert [f.data for f in node.frames] == publisher.sent
        assert {f.codec for f in node.frames} == {"H264"}
        stamps = [f.timestamp for f in node.frames]
        assert stamps == [i * 3600 for i in range(60)]
        assert node.tap is not None
        assert node.tap.ssrc == adapter.sender_ssrc(publisher.pc.getTransceivers()[0].sender)
        decoded = node.tap.receiver.track._queue  # type: ignore[attr-defined]
        assert decoded.empty(), "the decoder must not have produced frames"
    # put(None) reached the decoder thread's real queue: closing did not hang and the thread ended.
    assert not [t for t in threading.enumerate() if t.name == "video-decoder" and t.is_alive()]


async def test_a_pli_reaches_the_publisher_and_the_publishers_sender_reports_it() -> None:
    """`ReceiverTap.request_keyframe` sends a PLI for the publisher's SSRC; `intercept_keyframe_requests` on the
    publisher's sender sees it (stock aiortc would only set its encoder's flag)."""
    publisher = Publisher(await h264_loop())
    node = Counter()
    async with closing(publisher.pc, node.pc):
        await negotiate(publisher.pc, node.pc)
        await eventually(lambda: node.pc.connectionState == "connected")
        assert node.tap is not None
        assert not await node.tap.request_keyframe(), "no SSRC before the first packet"
        publisher.push_frame()
        await eventually(lambda: len(node.frames) == 1)
        for _ in range(3):
            assert await node.tap.request_keyframe()
        await eventually(lambda: publisher.plis == 3)
        assert node.tap.plis_sent == 3


async def test_codecs_are_forced_on_the_offer_and_on_an_answer() -> None:
    offerer, answerer = peer(), peer()
    async with closing(offerer, answerer):
        transceiver = offerer.addTransceiver("video", direction="recvonly")
        adapter.force_codecs(transceiver, VideoCodec.VP8)
        await offerer.setLocalDescription(await offerer.createOffer())
        offer = offerer.localDescription.sdp
        assert "VP8/90000" in offer and "H264/90000" not in offer
        plain = peer()
        async with closing(plain):
            plain.addTransceiver("video", direction="recvonly")
            plain.addTransceiver("audio", direction="recvonly")
            await plain.setLocalDescription(await plain.createOffer())
            assert "VP8/90000" in plain.localDescription.sdp and "H264/90000" in plain.localDescription.sdp
            # The answerer applies the offer first (as the node does for WHIP/WHEP), then forces H.264 and Opus.
            await answerer.setRemoteDescription(plain.localDescription)
            for t in answerer.getTransceivers():
                adapter.force_codecs(t, VideoCodec.H264)
            await answerer.setLocalDescription(await answerer.createAnswer())
            sdp = answerer.localDescription.sdp
            assert "H264/90000" in sdp and "VP8/90000" not in sdp
            assert "opus/48000" in sdp and "PCMU" not in sdp
            assert adapter.negotiated_codec(answerer.getTransceivers()[0]) == ("H264", 90000)


async def test_forcing_a_codec_the_offer_lacks_is_an_error() -> None:
    offerer, answerer = peer(), peer()
    async with closing(offerer, answerer):
        transceiver = offerer.addTransceiver("video", direction="recvonly")
        adapter.force_codecs(transceiver, VideoCodec.VP8)
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        with pytest.raises(AdapterError, match="does not offer video/H264"):
            adapter.force_codecs(answerer.getTransceivers()[0], VideoCodec.H264)


async def test_loopback_candidates_only_when_asked() -> None:
    pc = peer()
    async with closing(pc):
        pc.addTransceiver("video")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")]
        assert candidates and all(" 127.0.0.1 " in line for line in candidates)
    adapter.set_loopback_candidates(LoopbackCandidates.DEFAULT)
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)
    adapter.set_loopback_candidates(LoopbackCandidates.INCLUDE)
    assert "127.0.0.1" in aioice.ice.get_host_addresses(True, False)


async def test_tapping_after_the_receiver_started_is_refused() -> None:
    publisher = Publisher(await h264_loop())
    node = peer()
    tracks: list[MediaStreamTrack] = []
    node.on("track", tracks.append)
    async with closing(publisher.pc, node):
        await negotiate(publisher.pc, node)
        await eventually(lambda: node.connectionState == "connected")
        await eventually(lambda: bool(tracks))
        with pytest.raises(AdapterError, match="before the receiver starts"):
            adapter.tap_receiver(node, tracks[0], lambda frame: None)


@pytest.mark.parametrize("profile", ["SRTP_AEAD_AES_256_GCM", "SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"])
async def test_an_srtp_profile_can_be_preferred(profile: str) -> None:
    assert adapter.prefer_srtp(profile)
    try:
        publisher = Publisher(await h264_loop())
        node = Counter()
        async with closing(publisher.pc, node.pc):
            await negotiate(publisher.pc, node.pc)
            await eventually(lambda: node.pc.connectionState == "connected")
            assert adapter.srtp_profile(node.pc) == profile
            assert adapter.srtp_profile(publisher.pc) == profile
            publisher.push_frame()
            await eventually(lambda: len(node.frames) == 1)
    finally:
        assert adapter.prefer_srtp(None)
    assert rtcdtlstransport.SRTP_PROFILES[0].openssl_profile == b"SRTP_AEAD_AES_256_GCM"
    assert not adapter.prefer_srtp("SRTP_NULL_NULL")


async def test_decrypted_rtp_can_be_counted_without_the_receivers() -> None:
    """The benchmark viewers' cheap path: every RTP packet, decrypted, to a handler; the receiver sees none."""
    publisher = Publisher(await h264_loop())
    node = Counter()  # taps its receiver: it must get nothing once the packets are counted instead
    packets: list[bytes] = []
    async with closing(publisher.pc, node.pc):
        await publisher.pc.setLocalDescription(await publisher.pc.createOffer())
        await node.pc.setRemoteDescription(publisher.pc.localDescription)
        adapter.count_decrypted_rtp(node.pc, packets.append)
        await node.pc.setLocalDescription(await node.pc.createAnswer())
        await publisher.pc.setRemoteDescription(node.pc.localDescription)
        await eventually(lambda: node.pc.connectionState == "connected")
        for _ in range(3):
            publisher.push_frame()
        await eventually(lambda: sum(p[1] >> 7 for p in packets) == 3)  # three marker bits: three frames
        # Decrypted: the payloads put back together are the frames sent.
        assert b"".join(h264_depayload(RtpPacket.parse(p).payload) for p in packets) == b"".join(publisher.sent)
        assert node.frames == []


def test_the_direct_senders_ntp_clock_follows_aiortcs() -> None:
    """The sender reports' NTP time comes from the monotonic clock and a base from aiortc's clock (cheaper per
    frame): it stays within a millisecond of aiortc's own reading."""
    from aiortc import clock

    from rtc.aiortc_adapter import _ntp_now

    for _ in range(3):
        ours, theirs = _ntp_now(), clock.current_ntp_time()
        assert abs(ours - theirs) < 4294967296 // 1000, (ours, theirs)


async def resends_of_a_packet_nacked_ten_times(gated: bool) -> int:
    publisher = Publisher(await h264_loop())
    if gated:
        adapter.gate_retransmissions(publisher.pc.getTransceivers()[0].sender)
    node = Counter()
    async with closing(publisher.pc, node.pc):
        await negotiate(publisher.pc, node.pc)
        await eventually(lambda: node.pc.connectionState == "connected")
        seen = RetransmissionCounter(node.pc)
        for _ in range(5):
            publisher.push_frame()
        await eventually(lambda: len(node.frames) == 5)
        return await seen.nack_repeatedly(seen.seqs[-3], times=10)


async def test_a_stock_sender_behind_the_gate_resends_a_packet_a_few_times_at_most() -> None:
    """An agent's publisher is a stock sender: ungated, it resends a packet at every NACK that names it (here ten
    times in a row); through `gate_retransmissions`, at most three times."""
    # Ten on a quiet loopback; at least four even if a loaded machine drops some datagrams.
    assert await resends_of_a_packet_nacked_ten_times(gated=False) >= 4, "the stock sender resends every time"
    assert 1 <= await resends_of_a_packet_nacked_ten_times(gated=True) <= 3
