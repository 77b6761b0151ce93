"""Every use of aiortc and aioice internals, in one place, pinned to aiortc 1.16.0.

Forwarding encoded media through aiortc needs a few seams that its public API does not offer (see
shared/docs/architecture.md, "Forwarding in aiortc 1.16.0"). Each seam below names the private attribute it
touches, so that an aiortc upgrade is a review of this one file; `tests/rtc/` exercises every seam with real
aiortc peers on loopback and fails loudly when one breaks. Importing this module with another aiortc version
raises `AdapterError` at once rather than misbehaving later.

Seams:
- `tap_receiver`: the encoded frames a receiver reassembles, taken before its decoder (the private decoder queue
  is replaced by an object whose `put()` hands frames over and whose `get()` reads the original queue), with a
  jitter buffer that releases a frame on its RTP marker bit instead of one frame later; with `on_packet`, every
  video RTP packet as well, the moment it arrives (`ReceivedPacket`, for per-packet forwarding);
- `ReceiverTap.request_keyframe`: a PLI to the publisher (`RTCRtpReceiver._send_rtcp_pli`);
- `ReceiverTap.ssrc`: the publisher's media SSRC, read from its packets;
- `intercept_keyframe_requests`: a subscriber's PLI/FIR on one `RTCRtpSender` (stock aiortc only sets a flag its
  encoder reads, so with pre-encoded packets the request is lost);
- `DirectSender`: RTP sent on the ICE pair's socket with the sender's SRTP session, past `RTCRtpSender`, which
  keeps its RTCP role; its `_retransmit` is replaced (answered from our history, through a `RetransmitGate` fed
  by the sender's RTT estimate and octet count); `gate_retransmissions` puts the same gate on a stock sender;
- `force_codecs`: H.264 or VP8 (+ Opus) on a transceiver, before or after the remote offer was applied;
- `set_loopback_candidates`: 127.0.0.1 among the ICE host candidates (aioice leaves it out), only when asked;
- `probe_rtp_arrivals`, `probe_direct_sends`: a benchmark's timing of packets in and out (never installed otherwise).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver, rtcdtlstransport
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.rtp import RTP_HISTORY_SIZE

from rtc.retransmit_gate import RetransmitGate

logger = logging.getLogger(__name__)

PINNED_AIORTC = "1.16.0"


class AdapterError(Exception):
    """aiortc is not the version this adapter was written for, or a seam is missing."""


if aiortc.__version__ != PINNED_AIORTC:
    raise AdapterError(
        f"rtc.aiortc_adapter is written for aiortc {PINNED_AIORTC}, found {aiortc.__version__}: "
        "review every seam in rtc/aiortc_adapter.py and run tests/rtc before changing the pin"
    )

# The private names this module relies on, checked once at import so that a rename fails here, not in a call.
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
for _cls, _names in (
    (RTCRtpReceiver, ("_send_rtcp_pli", "_handle_rtp_packet")),
    (RTCRtpSender, ("_send_keyframe", "_handle_rtcp_packet", "_retransmit")),
    (RTCRtpTransceiver, ("setCodecPreferences",)),
):
    for _name in _names:
        if not hasattr(_cls, _name):
            raise AdapterError(f"aiortc {aiortc.__version__}: {_cls.__name__}.{_name} is gone")
if not callable(getattr(aioice.ice, "get_host_addresses", None)):
    raise AdapterError("aioice: ice.get_host_addresses is gone")


# ---------------------------------------------------------------------------------------------------------------
# Encoded frames before the decoder


@dataclass(frozen=True)
class ReceivedFrame:
    """One reassembled encoded frame, as the publisher sent it.

    `data` is what the codec's depayloader yields: Annex-B for H.264 (start codes before each NAL unit), the VP8
    frame for VP8, one Opus packet for audio. `timestamp` is the RTP timestamp unwrapped and counted from the
    first frame of this receiver, in units of `clock_rate`.
    """

    codec: str
    """"H264", "VP8" or "opus"."""
    clock_rate: int
    payload_type: int
    data: bytes
    timestamp: int


@dataclass(frozen=True, slots=True)
class ReceivedPacket:
    """One video RTP packet of a publisher, as it arrived (decrypted, RTX unwrapped), for per-packet forwarding.

    `timestamp` is on the same unwrapped timeline as `ReceivedFrame.timestamp` of the same receiver. `payload`
    is the RTP payload to forward: as received for H.264; for VP8 with a one-byte payload descriptor (the
    extension with picture id, TL0PICIDX and key index removed), the form the node's own packetizer makes, so
    that packets and packetized frames (a GOP cache burst) can follow each other in one outgoing stream."""

    sequence_number: int
    timestamp: int
    marker: bool
    payload: bytes
    starts_frame: bool
    """The first packet of a frame (VP8: S bit and partition 0; H.264: see `_starts_frame`)."""
    keyframe: bool
    """The first packet of a keyframe (VP8: a frame start whose payload header's P bit is 0; H.264: a frame start
    carrying an SPS or the start of an IDR slice)."""


FrameHandler = Callable[[ReceivedFrame], None]
GapHandler = Callable[[], None]
PacketHandler = Callable[[ReceivedPacket], None]


class _Unwrapper:
    """RTP timestamps unwrapped (32-bit circle) and counted from the first one seen; a packet older than the
    newest (a retransmission) maps below it instead of being taken for a wrap (aiortc's `TimestampMapper`
    would move its origin on any smaller timestamp)."""

    def __init__(self) -> None:
        self._last_raw: int | None = None
        self._last = 0

    def map(self, raw: int) -> int:
        if self._last_raw is None:
            self._last_raw = raw
            return 0
        delta = (raw - self._last_raw) & 0xFFFFFFFF
        if delta >= 0x80000000:
            return self._last - (0x100000000 - delta)
        self._last_raw = raw
        self._last += delta
        return self._last


def _vp8_descriptor_length(payload: bytes) -> int:
    """Bytes of the VP8 payload descriptor (RFC 7741 4.2) at the start of `payload`; 0 if it is malformed."""
    if not payload:
        return 0
    length = 1
    if payload[0] & 0x80:  # X: an extension byte follows
        if len(payload) < 2:
            return 0
        ext = payload[1]
        length = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) < 3:
                return 0
            length += 2 if payload[2] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            length += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            length += 1
    return length if length < len(payload) else 0


def _packet_of(codec: str | None, packet: Any, timestamp: int) -> ReceivedPacket | None:
    """The forwardable form of a received RTP packet (None for a VP8 payload too short to be one)."""
    payload: bytes = packet.payload
    starts = _starts_frame(codec, payload)
    key = False
    if codec == "VP8":
        if payload:
            length = _vp8_descriptor_length(payload)
            if length == 0:
                return None
            if length > 1:
                payload = bytes((payload[0] & 0x7F,)) + payload[length:]
            key = starts and payload[1] & 0x01 == 0
    elif codec == "H264" and starts:
        nal_type = payload[0] & 0x1F
        if nal_type == 24:  # STAP-A: the first aggregated unit's type (SPS comes first in a keyframe)
            key = len(payload) > 3 and payload[3] & 0x1F in (5, 7)
        elif nal_type == 28:
            key = payload[1] & 0x1F == 5
        else:
            key = nal_type in (5, 7)
    return ReceivedPacket(packet.sequence_number, timestamp, bool(packet.marker), payload, starts, key)


class _TapQueue:
    """Stands in for the receiver's decoder queue: frames go to the forwarder; `None` (stop) reaches the decoder
    thread's real queue, which the thread keeps reading (so it idles at no cost and stops when told)."""

    def __init__(self, original: queue.Queue[Any], on_frame: FrameHandler) -> None:
        self._original = original
        self._on_frame = on_frame

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            self._original.put(None)
            return
        codec, frame = item
        self._on_frame(
            ReceivedFrame(
                codec=str(codec.name),
                clock_rate=int(codec.clockRate),
                payload_type=int(codec.payloadType),
                data=bytes(frame.data),
                timestamp=int(frame.timestamp),
            )
        )

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._original.get(block, timeout)


def _starts_frame(codec: str | None, payload: bytes) -> bool:
    """Whether an RTP payload is the first of a frame, from the payload format alone (RFC 6184, RFC 7741)."""
    if len(payload) < 2:
        return False
    if codec == "H264":
        nal_type = payload[0] & 0x1F
        if nal_type == 28:  # FU-A: the first fragment of a slice that begins the picture
            return (
                bool(payload[1] & 0x80)
                and (payload[1] & 0x1F) in (1, 5)
                and len(payload) > 2
                and bool(payload[2] & 0x80)
            )
        if nal_type in (1, 5):  # a slice: first_mb_in_slice is ue(v), 0 is the single bit 1
            return bool(payload[1] & 0x80)
        return nal_type in (6, 7, 8, 9, 24)  # SEI, SPS, PPS, AUD, STAP-A come before a picture's slices
    if codec == "VP8":
        return bool(payload[0] & 0x10) and payload[0] & 0x0F == 0  # S bit, partition 0
    return False


def _seq_delta(a: int, b: int) -> int:
    """a - b on the 16-bit sequence circle, in [-32768, 32767]."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


class _MarkerJitterBuffer:
    """Video jitter buffer that releases a frame as soon as it is complete: its packets from the one after the
    previous frame's end to a packet with the marker bit (or to a packet with a new timestamp), all present.

    aiortc's own buffer waits for the first packet of the next frame, a frame interval of added latency. Missing
    packets are waited for (NACK and RTX fill them) up to `max_wait` packets; then the buffer skips to the next
    frame it can delimit, asks for a keyframe (the returned flag makes the receiver send a PLI) and reports the
    gap, so the forwarder holds every subscriber until a keyframe.

    Frames go out through `emit(frame, payload_type)`, every complete one at once and in order (aiortc's `add()`
    returns at most one frame per packet, which would leave frames behind after a retransmission fills a hole);
    `add()` itself always returns no frame."""

    def __init__(
        self,
        on_gap: GapHandler | None,
        codecs: dict[int, str],
        emit: Callable[[JitterFrame, int], None],
        capacity: int = 512,
        max_wait: int = 96,
        on_packet: Callable[[Any], None] | None = None,
    ) -> None:
        self._emit = emit
        self._on_packet = on_packet
        """Every packet the receiver hands over, before reassembly (late copies too: they fill a hole in what
        was forwarded)."""
        self._codecs = codecs
        """Codec names by payload type, to recognise the first packet of a frame."""
        self._on_gap = on_gap or (lambda: None)
        self._pli_on_gap = on_gap is None
        """With a gap handler, the forwarder asks for the keyframe (coalesced); without one, the receiver does."""
        self._capacity = capacity
        self._max_wait = max_wait
        self._packets: dict[int, Any] = {}
        self._next: int | None = None
        self._newest: int | None = None
        self.ssrc: int | None = None
        self.gaps = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        seq: int = packet.sequence_number
        if self.ssrc is None:
            self.ssrc = packet.ssrc
        if self._on_packet is not None:
            self._on_packet(packet)
        if self._next is None:
            # Not in step yet: a frame begins with a packet that says so, or right after one that ends a frame.
            if _starts_frame(self._codecs.get(packet.payload_type), packet.payload):
                self._next = seq
            elif packet.marker:
                self._next = (seq + 1) & 0xFFFF
                self._newest = seq
                return False, None
            else:
                return False, None
        if _seq_delta(seq, self._next) < 0:
            return False, None  # a late copy of a packet already released or skipped
        if _seq_delta(seq, self._next) >= self._capacity:
            self.gaps += 1
            self._on_gap()
            self._resync()
            if packet.marker:
                self._next = (seq + 1) & 0xFFFF
            return self._pli_on_gap, None
        self._packets[seq] = packet
        if self._newest is None or _seq_delta(seq, self._newest) > 0:
            self._newest = seq
        if self._drain():
            return False, None
        if self._newest is not None and _seq_delta(self._newest, self._next) > self._max_wait:
            self._skip()
            self._drain()
            return self._pli_on_gap, None
        return False, None

    def _drain(self) -> int:
        """Emit every frame that is complete, oldest first; how many."""
        count = 0
        while self._next is not None:
            payload_type = self._packets[self._next].payload_type if self._next in self._packets else None
            frame = self._release()
            if frame is None or payload_type is None:
                return count
            self._emit(frame, payload_type)
            count += 1
        return count

    def _release(self) -> JitterFrame | None:
        assert self._next is not None
        seq = self._next
        first = self._packets.get(seq)
        if first is None:
            return None
        timestamp = first.timestamp
        parts: list[bytes] = []
        while True:
            packet = self._packets.get(seq)
            if packet is None:
                return None
            if packet.timestamp != timestamp:
                break  # a new frame began without a marker on the last one: the frame before it is whole
            parts.append(packet._data)
            seq = (seq + 1) & 0xFFFF
            if packet.marker:
                break
        for _ in range(len(parts)):
            self._packets.pop(self._next, None)
            self._next = (self._next + 1) & 0xFFFF
        return JitterFrame(data=b"".join(parts), timestamp=timestamp)

    def _skip(self) -> None:
        """Give up on the missing packets: move to the first packet known to start a frame."""
        assert self._next is not None and self._newest is not None
        self.gaps += 1
        self._on_gap()
        span = _seq_delta(self._newest, self._next)
        for offset in range(1, span + 1):
            seq = (self._next + offset) & 0xFFFF
            packet = self._packets.get(seq)
            before = self._packets.get((seq - 1) & 0xFFFF)
            if packet is None:
                continue
            if _starts_frame(self._codecs.get(packet.payload_type), packet.payload) or (
                before is not None and (before.marker or before.timestamp != packet.timestamp)
            ):
                self._drop_before(seq)
                return
        self._resync()

    def _drop_before(self, seq: int) -> None:
        assert self._next is not None
        while self._next != seq:
            self._packets.pop(self._next, None)
            self._next = (self._next + 1) & 0xFFFF

    def _resync(self) -> None:
        self._packets.clear()
        self._next = None
        self._newest = None


class _AudioPassBuffer:
    """Audio buffer that releases each packet at once (one Opus packet is one frame); late copies are dropped.
    aiortc's own audio buffer prefetches four packets (80 ms) before it releases one."""

    def __init__(self) -> None:
        self._newest: int | None = None
        self.ssrc: int | None = None

    @property
    def capacity(self) -> int:
        return 16

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        if self.ssrc is None:
            self.ssrc = packet.ssrc
        seq: int = packet.sequence_number
        if self._newest is not None and _seq_delta(seq, self._newest) <= 0:
            return False, None
        self._newest = seq
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


class ReceiverTap:
    """A receiver whose encoded frames go to a handler instead of its decoder (see `tap_receiver`)."""

    def __init__(self, receiver: RTCRtpReceiver, kind: str, buffer: _MarkerJitterBuffer | _AudioPassBuffer) -> None:
        self.receiver = receiver
        self.kind = kind
        self._buffer = buffer
        self.plis_sent = 0

    @property
    def ssrc(self) -> int | None:
        """The publisher's media SSRC, known once its first packet arrived."""
        return self._buffer.ssrc

    @property
    def gaps(self) -> int:
        """Times the buffer gave up waiting for lost packets and skipped ahead."""
        return self._buffer.gaps if isinstance(self._buffer, _MarkerJitterBuffer) else 0

    async def request_keyframe(self) -> bool:
        """Send a PLI to the publisher; False if its SSRC is not known yet or the receiver has no RTCP SSRC."""
        ssrc = self.ssrc
        if ssrc is None or getattr(self.receiver, _RTCP_SSRC, None) is None:
            return False
        await self.receiver._send_rtcp_pli(ssrc)
        self.plis_sent += 1
        return True


def receiver_for_track(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpReceiver:
    """The receiver of a remote track (public API: the transceivers)."""
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            receiver: RTCRtpReceiver = transceiver.receiver
            return receiver
    raise AdapterError("no receiver carries this track")


def _transceiver_of(pc: RTCPeerConnection, receiver: RTCRtpReceiver) -> RTCRtpTransceiver:
    for transceiver in pc.getTransceivers():
        if transceiver.receiver is receiver:
            found: RTCRtpTransceiver = transceiver
            return found
    raise AdapterError("no transceiver has this receiver")


def tap_receiver(
    pc: RTCPeerConnection,
    track: MediaStreamTrack,
    on_frame: FrameHandler,
    on_gap: GapHandler | None = None,
    on_packet: PacketHandler | None = None,
) -> ReceiverTap:
    """Take a remote track's encoded frames before its decoder.

    Call it from `pc.on("track")`, which aiortc fires inside `setRemoteDescription` before the receiver starts:
    later, the decoder thread would already hold the original queue. `on_frame` runs in the event loop for each
    complete frame; `on_gap` when video packets were lost for good (the next frames need a keyframe first);
    `on_packet` (video) for every RTP packet as it arrives, before its frame is complete, on the frames'
    timeline (late retransmissions too, out of order).
    """
    receiver = receiver_for_track(pc, track)
    if getattr(receiver, "_RTCRtpReceiver__started", False):
        raise AdapterError("tap_receiver must run in pc.on('track'), before the receiver starts")
    original = getattr(receiver, _DECODER_QUEUE, None)
    if not isinstance(original, queue.Queue):
        raise AdapterError(f"aiortc {aiortc.__version__}: RTCRtpReceiver has no decoder queue to tap")
    if not hasattr(receiver, _JITTER_BUFFER) or not hasattr(receiver, _TIMESTAMP_MAPPER):
        raise AdapterError(f"aiortc {aiortc.__version__}: RTCRtpReceiver has no jitter buffer to replace")
    tap_queue = _TapQueue(original, on_frame)
    buffer: _MarkerJitterBuffer | _AudioPassBuffer = _AudioPassBuffer()
    if track.kind == "video":
        negotiated = getattr(_transceiver_of(pc, receiver), "_codecs", None) or []
        by_type = {int(c.payloadType): c for c in negotiated}
        names = {pt: str(c.name) for pt, c in by_type.items()}
        unwrap = _Unwrapper()

        def emit(frame: JitterFrame, payload_type: int) -> None:
            # What the receiver does with a frame its buffer returns: map the timestamp, queue it for decoding.
            codec = by_type.get(payload_type)
            if codec is not None:
                frame.timestamp = unwrap.map(frame.timestamp)
                tap_queue.put((codec, frame))

        forward: Callable[[Any], None] | None = None
        if on_packet is not None:
            handler = on_packet

            def forward(packet: Any) -> None:
                received = _packet_of(names.get(packet.payload_type), packet, unwrap.map(packet.timestamp))
                if received is not None:
                    handler(received)

        buffer = _MarkerJitterBuffer(on_gap, names, emit, on_packet=forward)
    setattr(receiver, _JITTER_BUFFER, buffer)
    setattr(receiver, _DECODER_QUEUE, tap_queue)
    return ReceiverTap(receiver, track.kind, buffer)


# ---------------------------------------------------------------------------------------------------------------
# Subscribers' keyframe requests


def intercept_keyframe_requests(sender: RTCRtpSender, handler: Callable[[], None]) -> None:
    """Call `handler` for every PLI or FIR the subscriber sends about this sender's stream.

    Stock aiortc routes both to `RTCRtpSender._send_keyframe`, which only sets a flag for its encoder; an instance
    attribute of the same name takes precedence over the method, so only this sender is affected."""
    if not callable(getattr(sender, "_send_keyframe", None)):
        raise AdapterError(f"aiortc {aiortc.__version__}: RTCRtpSender._send_keyframe is gone")
    sender._send_keyframe = handler  # type: ignore[method-assign]


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC this sender stamps on its RTP packets."""
    ssrc: int = sender._ssrc
    return ssrc


# ---------------------------------------------------------------------------------------------------------------
# Codecs


class VideoCodec(enum.StrEnum):
    H264 = "H264"
    VP8 = "VP8"


def _capabilities(kind: str, mime: str) -> list[RTCRtpCodecCapability]:
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for c in caps if c.mimeType.lower() == mime.lower()]
    rtx = [c for c in caps if c.mimeType.lower() == f"{kind}/rtx"]
    return chosen + rtx


def force_codecs(transceiver: RTCRtpTransceiver, video: VideoCodec = VideoCodec.H264) -> None:
    """Only `video` (with RTX) on a video transceiver, only Opus on an audio one.

    Before the remote description: the public `setCodecPreferences`. After a remote offer was applied (an
    answerer, as the node is for WHIP and WHEP): the negotiated list (`transceiver._codecs`) is filtered as well,
    since aiortc applies preferences only while it applies the remote description."""
    mime = f"video/{video.value}" if transceiver.kind == "video" else "audio/opus"
    caps = _capabilities(transceiver.kind, mime)
    transceiver.setCodecPreferences(caps)
    negotiated = getattr(transceiver, "_codecs", None)
    if negotiated:
        kept = [c for c in negotiated if c.mimeType.lower() == mime.lower()]
        kept_pts = {c.payloadType for c in kept}
        kept += [c for c in negotiated if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") in kept_pts]
        if not kept:
            raise AdapterError(f"the remote side does not offer {mime}")
        transceiver._codecs = kept


# ---------------------------------------------------------------------------------------------------------------
# ICE on loopback


class LoopbackCandidates(enum.StrEnum):
    DEFAULT = "default"
    """aioice as it stands: every interface address but 127.0.0.1 and ::1."""
    INCLUDE = "include"
    """127.0.0.1 as well (a node and its peers on one machine)."""
    ONLY = "only"
    """127.0.0.1 alone (tests, benchmarks, the demo): nothing can leave the machine over ICE."""


_stock_get_host_addresses: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def set_loopback_candidates(mode: LoopbackCandidates) -> None:
    """Choose which host addresses aioice gathers, process-wide (aioice reads a module function for it).

    The node and the agent call this once from their configuration; it is off (`DEFAULT`) unless asked for."""

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if mode is LoopbackCandidates.ONLY:
            return ["127.0.0.1"] if use_ipv4 else []
        addresses = _stock_get_host_addresses(use_ipv4, use_ipv6)
        if mode is LoopbackCandidates.INCLUDE and use_ipv4 and "127.0.0.1" not in addresses:
            addresses = ["127.0.0.1", *addresses]
        return addresses

    chosen = _stock_get_host_addresses if mode is LoopbackCandidates.DEFAULT else host_addresses
    aioice.ice.get_host_addresses = chosen  # type: ignore[assignment]


def negotiated_codec(transceiver: RTCRtpTransceiver) -> tuple[str, int]:
    """The codec name ("H264", "VP8", "opus") and clock rate the transceiver sends and receives first."""
    codecs = getattr(transceiver, "_codecs", None)
    if not codecs:
        raise AdapterError("the transceiver has no negotiated codec yet")
    first = codecs[0]
    return str(first.name), int(first.clockRate)


def transceiver_of_track(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpTransceiver:
    """The transceiver whose receiver or sender carries `track`."""
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track or transceiver.sender.track is track:
            found: RTCRtpTransceiver = transceiver
            return found
    raise AdapterError("no transceiver carries this track")


# ---------------------------------------------------------------------------------------------------------------
# Load generators


RtpHandler = Callable[[bytes], None]


def count_decrypted_rtp(pc: RTCPeerConnection, handler: RtpHandler) -> None:
    """Hand every RTP packet `pc` receives, decrypted, to `handler` instead of its receivers (no parsing, no jitter
    buffer, no decoder, no NACK): benchmark viewers that must cost little per packet. RTCP still flows.

    Call it once the connection's transports exist (after `setRemoteDescription`)."""
    transports = {t.receiver.transport for t in pc.getTransceivers()}
    if not transports:
        raise AdapterError("the connection has no transport yet")
    for transport in transports:
        if not hasattr(transport, "_handle_rtp_data"):
            raise AdapterError(f"aiortc {aiortc.__version__}: RTCDtlsTransport._handle_rtp_data is gone")

        async def handle(data: bytes, arrival_time_ms: int) -> None:
            handler(data)

        transport._handle_rtp_data = handle  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------------------------
# The direct send path: RTP built by the forwarder, encrypted and sent without RTCRtpSender's per-packet work


_RTX_HISTORY = 256


class _Idle(MediaStreamTrack):
    """A track that never yields: the stock sender task waits on it forever instead of polling for a track every
    20 ms (what it does with no track at all), so a bypassed sender costs nothing."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        self._never = asyncio.get_running_loop().create_future()
        await self._never
        raise AssertionError("unreachable")  # pragma: no cover


_ntp_base: tuple[float, int] = (-1e9, 0)


def _ntp_now() -> int:
    """aiortc's `clock.current_ntp_time()` (0.7 us: a datetime), from the monotonic clock and a base re-read every
    10 s (0.1 us): called once per frame and subscriber for the sender reports."""
    global _ntp_base
    now = time.monotonic()
    base_mono, base_ntp = _ntp_base
    if now - base_mono > 10.0:
        from aiortc import clock

        _ntp_base = (base_mono, base_ntp) = (now, clock.current_ntp_time())
    return base_ntp + int((now - base_mono) * 4294967296.0)


class DirectSender:
    """Sends finished RTP packets for one `RTCRtpSender`, which keeps its RTCP role (sender reports, receiving
    the subscriber's NACK, PLI/FIR, receiver reports) but no longer builds packets itself.

    Per packet this is one SRTP protect (C) and one `sendto` on the ICE pair's socket: no coroutine, no
    `RtpPacket` object, no header-extension serialisation. The subscriber's NACKs are answered from the last
    `_RTX_HISTORY` packets sent here, as RTX when negotiated (else as the packet again), as far as the
    `RetransmitGate` lets them (once per round trip, a few times, within half the stream's rate). The sender's
    report counters are kept up to date per frame (`account`)."""

    def __init__(self, transceiver: RTCRtpTransceiver) -> None:
        sender = transceiver.sender
        for name in (
            "_ssrc",
            "_rtx_ssrc",
            "_retransmit",
            "_RTCRtpSender__packet_count",
            "_RTCRtpSender__octet_count",
            "_RTCRtpSender__rtt",
        ):
            if not hasattr(sender, name):
                raise AdapterError(f"aiortc {aiortc.__version__}: RTCRtpSender.{name} is gone")
        self._transceiver = transceiver
        self._sender = sender
        self._dtls = sender.transport
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        self._history: list[bytes | None] = [None] * _RTX_HISTORY
        self._rtx_seq = 0
        self._route: tuple[Callable[[bytes], bytes], Callable[[bytes, Any], None], Any] | None = None
        self._gate = RetransmitGate(_RTX_HISTORY)
        self.retransmitted = 0
        sender._retransmit = self._retransmit  # type: ignore[method-assign]
        sender.replaceTrack(_Idle(transceiver.kind))

    def negotiated(self) -> bool:
        """The transceiver has its codecs (the remote answer or offer was applied): `payload_types()` works."""
        return bool(getattr(self._transceiver, "_codecs", None))

    def payload_types(self) -> tuple[int, int | None]:
        """The negotiated payload type and its RTX payload type (None without RTX); after the answer."""
        codecs = getattr(self._transceiver, "_codecs", None)
        if not codecs:
            raise AdapterError("the transceiver has no negotiated codec yet")
        pt = int(codecs[0].payloadType)
        rtx = [
            int(c.payloadType) for c in codecs if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == pt
        ]
        return pt, (rtx[0] if rtx else None)

    def ready(self) -> bool:
        """DTLS is up (SRTP keys known) and ICE has a nominated pair."""
        dtls = self._dtls
        return dtls.state == "connected" and dtls._tx_srtp is not None and 1 in dtls.transport._connection._nominated

    def closed(self) -> bool:
        return self._dtls.state in ("closed", "failed")

    async def wait_ready(self, timeout: float = 30.0) -> bool:  # noqa: ASYNC109
        """Wait until `ready()` (True) or the transport closed or `timeout` passed (False), on the DTLS
        transport's state changes rather than by polling."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready():
            if self.closed() or loop.time() >= deadline:
                return False
            changed: asyncio.Future[None] = loop.create_future()

            def on_change(*_: object, changed: asyncio.Future[None] = changed) -> None:
                if not changed.done():
                    changed.set_result(None)

            self._dtls.on("statechange", on_change)
            try:
                # A short bound too: ICE nomination can follow the DTLS state change without an event of its own.
                await asyncio.wait([changed], timeout=min(0.25, max(0.0, deadline - loop.time())))
            finally:
                self._dtls.remove_listener("statechange", on_change)
        return True

    def write_buffer_size(self) -> int:
        """Bytes waiting in the socket's asyncio transport (the kernel would not take them yet)."""
        pair = self._dtls.transport._connection._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return 0
        size: int = getattr(pair.protocol.transport, "get_write_buffer_size", lambda: 0)()
        return size

    def _resolve(self) -> tuple[Callable[[bytes], bytes], Callable[[bytes, Any], None], Any] | None:
        """(SRTP protect, the ICE pair socket's sendto, the remote address), looked up once: aioice nominates a
        pair once per connection and aiortc sets the SRTP session once per DTLS handshake. None until both are."""
        pair = self._dtls.transport._connection._nominated.get(1)
        srtp = self._dtls._tx_srtp
        if pair is None or srtp is None or pair.protocol.transport is None:
            return None
        self._route = (srtp.protect, pair.protocol.transport.sendto, pair.remote_addr)
        return self._route

    def send(self, packet: bytes, seq: int) -> None:
        """Encrypt and send one RTP packet (`seq` is its sequence number, kept for retransmission)."""
        self._history[seq % _RTX_HISTORY] = packet
        route = self._route or self._resolve()
        if route is not None:
            protect, sendto, addr = route
            sendto(protect(packet), addr)

    def send_frame(self, packets: list[bytes], first_seq: int) -> None:
        """Encrypt and send a frame's RTP packets (consecutive sequence numbers from `first_seq`)."""
        history = self._history
        for i, packet in enumerate(packets):
            history[(first_seq + i) % _RTX_HISTORY] = packet
        route = self._route or self._resolve()
        if route is None:
            return
        protect, sendto, addr = route
        for packet in packets:
            sendto(protect(packet), addr)

    def account(self, rtp_timestamp: int, packets: int, octets: int) -> None:
        """Keep the stock sender's report counters (RTCP SR) in step with what was sent directly."""
        sender = self._sender
        sender._RTCRtpSender__ntp_timestamp = _ntp_now()  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += packets  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]

    async def _retransmit(self, sequence_number: int) -> None:
        slot = sequence_number % _RTX_HISTORY
        packet = self._history[slot]
        if packet is None or int.from_bytes(packet[2:4], "big") != sequence_number or not self.ready():
            return
        if not _may_resend(self._gate, self._sender, slot, packet, len(packet)):
            return
        _, rtx_pt = self.payload_types()
        if rtx_pt is not None:
            header_len = 12 + 4 * (packet[0] & 0x0F)
            if packet[0] & 0x10:  # header extension
                header_len += 4 + 4 * int.from_bytes(packet[header_len + 2 : header_len + 4], "big")
            header = bytearray(packet[:12])
            header[0] &= 0xE0  # no CSRC, no extension in the RTX copy
            header[1] = (packet[1] & 0x80) | rtx_pt
            header[2:4] = self._rtx_seq.to_bytes(2, "big")
            header[8:12] = self.rtx_ssrc.to_bytes(4, "big")
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            packet = bytes(header) + packet[2:4] + packet[header_len:]
        pair = self._dtls.transport._connection._nominated.get(1)
        if pair is not None:
            pair.protocol.transport.sendto(self._dtls._tx_srtp.protect(packet), pair.remote_addr)
            self.retransmitted += 1


def _may_resend(gate: RetransmitGate, sender: RTCRtpSender, slot: int, packet: object, size: int) -> bool:
    """`gate.allow` with the sender's own RTT estimate and count of octets sent (private to aiortc's sender)."""
    rtt: float | None = sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
    sent: int = sender._RTCRtpSender__octet_count  # type: ignore[attr-defined]
    return gate.allow(slot, packet, size, rtt=rtt, sent=sent)


def gate_retransmissions(sender: RTCRtpSender) -> None:
    """Answer the receiver's NACKs on a stock `RTCRtpSender` (one that builds its own packets: an agent's WHIP
    publisher, a benchmark's bot) through a `RetransmitGate`: aiortc's sender resends a packet every time it is
    asked, and its receivers ask again for every missing packet at each new gap."""
    for name in ("_RTCRtpSender__rtp_history", "_RTCRtpSender__rtt", "_RTCRtpSender__octet_count"):
        if not hasattr(sender, name):
            raise AdapterError(f"aiortc {aiortc.__version__}: RTCRtpSender.{name} is gone")
    history: dict[int, Any] = sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
    resend = sender._retransmit
    gate = RetransmitGate(RTP_HISTORY_SIZE)

    async def gated(sequence_number: int) -> None:
        slot = sequence_number % RTP_HISTORY_SIZE
        packet = history.get(slot)
        if packet is None or packet.sequence_number != sequence_number:
            return
        if _may_resend(gate, sender, slot, packet, 12 + len(packet.payload)):
            await resend(sequence_number)

    sender._retransmit = gated  # type: ignore[method-assign]


def packetize(codec: str, frame: bytes) -> list[bytes]:
    """RTP payloads of one encoded frame, as aiortc's own packetizers make them (H.264: single NAL units, STAP-A
    and FU-A; VP8: a one-byte payload descriptor without picture id, so that payloads can be shared by every
    subscriber; Opus: the packet)."""
    if codec == "H264":
        from aiortc.codecs.h264 import H264Encoder

        return list(H264Encoder._packetize(H264Encoder._split_bitstream(frame)))
    if codec == "VP8":
        from aiortc.codecs.vpx import PACKET_MAX

        size = PACKET_MAX - 1
        return [bytes([0x10 if pos == 0 else 0x00]) + frame[pos : pos + size] for pos in range(0, len(frame), size)]
    return [frame]


# ---------------------------------------------------------------------------------------------------------------
# SRTP profile


_STOCK_SRTP = list(rtcdtlstransport.SRTP_PROFILES)


def prefer_srtp(profile: str | None) -> bool:
    """Put one SRTP profile first in aiortc's list, process-wide (it reads a module list); None: aiortc's order.

    When the node is the DTLS client (it answers with `setup:active`), its first profile that the peer offers is
    used. Costs to protect a 1200-byte packet here: AEAD_AES_256_GCM (aiortc's first) 7.5 us, AES128_CM_SHA1_80
    6.0 us, AEAD_AES_128_GCM 3.9 us. Headless Chromium (Debian's) negotiated AES128_CM_SHA1_80 even with GCM
    preferred. Returns False (and changes nothing) if this libsrtp lacks the profile."""
    profiles = rtcdtlstransport.SRTP_PROFILES
    if profile is None:
        profiles[:] = _STOCK_SRTP
        return True
    wanted = [p for p in _STOCK_SRTP if p.openssl_profile == profile.encode()]
    if not wanted:
        return False
    profiles[:] = wanted + [p for p in _STOCK_SRTP if p.openssl_profile != profile.encode()]
    return True


def srtp_profile(pc: RTCPeerConnection) -> str | None:
    """The SRTP profile the connection's (first) DTLS transport negotiated, None before the handshake."""
    for transceiver in pc.getTransceivers():
        ssl = getattr(transceiver.receiver.transport, "_ssl", None)
        if ssl is not None and transceiver.receiver.transport.state == "connected":
            selected = ssl.get_selected_srtp_profile()
            return selected.decode() if selected else None
    return None


# ---------------------------------------------------------------------------------------------------------------
# Benchmark probes: packet in to packet out (process-wide, installed only by a benchmark's probed node)


PacketArrivalHandler = Callable[[int, int, int, float], None]
"""`(ssrc, sequence number, RTP timestamp, arrival)` of a received RTP packet; arrival on `time.perf_counter`."""

_probe_arrival = 0.0
_probe_frame: tuple[int, int] | None = None


def probe_rtp_arrivals(
    on_packet: PacketArrivalHandler,
) -> tuple[Callable[[], tuple[int, int] | None], Callable[[], float]]:
    """For a benchmark only (nothing of it runs unless called; it cannot be undone): `on_packet` for every RTP
    packet any connection of the process receives, with the time its datagram reached Python (aioice's
    `Connection.data_received`, called from the socket's `datagram_received`: before the queue that the DTLS
    transport reads, so the wait in that queue counts). Returns a function giving `(ssrc, RTP timestamp)` of the
    video frame a tap is emitting (valid inside the tap's `on_frame`), to match frames to their packets, and a
    function giving the arrival time of the packet being handled (valid inside a tap's `on_packet`: aiortc's
    receive path from the datagram's `recvfrom` to the jitter buffer does not suspend).

    Call it before the first connection is created."""
    global _probe_arrival, _probe_frame
    connection = aioice.ice.Connection
    dtls = rtcdtlstransport.RTCDtlsTransport
    for owner, name in (
        (connection, "data_received"),
        (connection, "recvfrom"),
        (dtls, "_handle_rtp_data"),
        (_MarkerJitterBuffer, "_release"),
    ):
        if not hasattr(owner, name):
            raise AdapterError(f"aiortc {aiortc.__version__}: {owner.__name__}.{name} is gone")
    data_received = connection.data_received
    recvfrom = connection.recvfrom
    handle_rtp_data = dtls._handle_rtp_data
    release = _MarkerJitterBuffer._release

    def timed_data_received(self: aioice.ice.Connection, data: bytes, component: int) -> None:
        arrivals: collections.deque[float] | None = self.__dict__.get("_probe_arrivals")
        if arrivals is None:
            arrivals = self.__dict__["_probe_arrivals"] = collections.deque()
        arrivals.append(time.perf_counter())
        data_received(self, data, component)

    async def timed_recvfrom(self: aioice.ice.Connection) -> tuple[bytes, int]:
        global _probe_arrival
        result = await recvfrom(self)
        arrivals: collections.deque[float] | None = self.__dict__.get("_probe_arrivals")
        _probe_arrival = arrivals.popleft() if arrivals else time.perf_counter()
        return result

    async def traced_rtp_data(self: rtcdtlstransport.RTCDtlsTransport, data: bytes, arrival_time_ms: int) -> None:
        # The DTLS transport's loop runs from the `recvfrom` above to here without yielding.
        if len(data) >= 12:
            on_packet(
                int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big"),
                int.from_bytes(data[4:8], "big"), _probe_arrival,
            )  # fmt: skip
        await handle_rtp_data(self, data, arrival_time_ms)

    def traced_release(self: _MarkerJitterBuffer) -> JitterFrame | None:
        global _probe_frame
        frame = release(self)
        if frame is not None and self.ssrc is not None:
            _probe_frame = (self.ssrc, frame.timestamp)
        return frame

    connection.data_received = timed_data_received  # type: ignore[method-assign]
    connection.recvfrom = timed_recvfrom  # type: ignore[method-assign]
    dtls._handle_rtp_data = traced_rtp_data  # type: ignore[method-assign]
    _MarkerJitterBuffer._release = traced_release  # type: ignore[method-assign]

    def emitting() -> tuple[int, int] | None:
        return _probe_frame

    def arriving() -> float:
        return _probe_arrival

    return emitting, arriving


def probe_direct_sends(on_sent: Callable[[list[float]], None]) -> None:
    """For a benchmark only (see `probe_rtp_arrivals`): `DirectSender.send_frame` records when each packet's
    `sendto` returned (`time.perf_counter`) and hands the list to `on_sent` (inside `send_frame`)."""

    def timed_send_frame(self: DirectSender, packets: list[bytes], first_seq: int) -> None:
        history = self._history
        for i, packet in enumerate(packets):
            history[(first_seq + i) % _RTX_HISTORY] = packet
        pair = self._dtls.transport._connection._nominated.get(1)
        if pair is None:
            return
        protect = self._dtls._tx_srtp.protect
        sendto = pair.protocol.transport.sendto
        addr = pair.remote_addr
        clock = time.perf_counter
        sent: list[float] = []
        for packet in packets:
            sendto(protect(packet), addr)
            sent.append(clock())
        on_sent(sent)

    DirectSender.send_frame = timed_send_frame  # type: ignore[method-assign]
