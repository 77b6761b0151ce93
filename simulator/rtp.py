"""H.264 over RTP (RFC 6184, packetization-mode 1): single NAL unit packets and FU-A fragments.

Frames are packetized once per (camera, profile); each client then only gets its own 12-byte RTP header
(sequence number, timestamp, SSRC) in front of the shared payloads.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from simulator.video import EncodedFrame, EncodedLoop

PAYLOAD_TYPE = 96
MAX_PAYLOAD = 1400
"""Largest RTP payload: NAL units above it are split into FU-A fragments."""

_FU_A = 28
_HEADER = struct.Struct("!BBHII")
_INTERLEAVED = struct.Struct("!cBH")
_SENDER_REPORT = struct.Struct("!BBHIIIIII")


@dataclass(frozen=True)
class RtpFrame:
    """The RTP payloads of one frame; the marker bit goes on the last one."""

    payloads: tuple[bytes, ...]
    keyframe: bool
    duration: int
    """In 90 kHz ticks."""

    @property
    def byte_size(self) -> int:
        return sum(len(payload) for payload in self.payloads)


def packetize_nal(nal: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """One NAL unit (no start code) as RTP payloads: itself if small, else FU-A fragments."""
    if not nal:
        return []
    if len(nal) <= max_payload:
        return [nal]
    header = nal[0]
    indicator = bytes([(header & 0xE0) | _FU_A])
    kind = header & 0x1F
    body = nal[1:]
    step = max_payload - 2
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    payloads: list[bytes] = []
    for i, chunk in enumerate(chunks):
        start = 0x80 if i == 0 else 0
        end = 0x40 if i == len(chunks) - 1 else 0
        payloads.append(indicator + bytes([start | end | kind]) + chunk)
    return payloads


def packetize_frame(frame: EncodedFrame, max_payload: int = MAX_PAYLOAD) -> RtpFrame:
    payloads = [payload for nal in frame.nals for payload in packetize_nal(nal, max_payload)]
    return RtpFrame(tuple(payloads), frame.keyframe, frame.duration)


def packetize_loop(loop: EncodedLoop, max_payload: int = MAX_PAYLOAD) -> tuple[RtpFrame, ...]:
    return tuple(packetize_frame(frame, max_payload) for frame in loop.frames)


def rtp_header(seq: int, timestamp: int, ssrc: int, marker: bool) -> bytes:
    return _HEADER.pack(0x80, (0x80 if marker else 0) | PAYLOAD_TYPE, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)


def rtp_packets(frame: RtpFrame, seq: int, timestamp: int, ssrc: int) -> list[bytes]:
    """Whole RTP packets of one frame, numbered from `seq` (for UDP: one datagram each)."""
    last = len(frame.payloads) - 1
    return [rtp_header(seq + i, timestamp, ssrc, i == last) + payload for i, payload in enumerate(frame.payloads)]


def interleaved_frame(frame: RtpFrame, seq: int, timestamp: int, ssrc: int, channel: int) -> bytes:
    """One frame's RTP packets framed for RTSP over TCP (RFC 2326 10.12: '$', channel, length), as one write."""
    last = len(frame.payloads) - 1
    parts: list[bytes] = []
    for i, payload in enumerate(frame.payloads):
        parts.append(_INTERLEAVED.pack(b"$", channel, len(payload) + 12))
        parts.append(rtp_header(seq + i, timestamp, ssrc, i == last))
        parts.append(payload)
    return b"".join(parts)


def interleave(packet: bytes, channel: int) -> bytes:
    return _INTERLEAVED.pack(b"$", channel, len(packet)) + packet


NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)."""


def sender_report(ssrc: int, wall_clock: float, timestamp: int, packets: int, octets: int) -> bytes:
    """An RTCP sender report (RFC 3550 6.4.1) with no report blocks: which RTP time is which wall-clock time."""
    ntp = wall_clock + NTP_EPOCH_OFFSET
    seconds = int(ntp)
    fraction = int((ntp - seconds) * (1 << 32)) & 0xFFFFFFFF
    return _SENDER_REPORT.pack(
        0x80, 200, 6, ssrc, seconds & 0xFFFFFFFF, fraction, timestamp & 0xFFFFFFFF, packets & 0xFFFFFFFF,
        octets & 0xFFFFFFFF,
    )  # fmt: skip


def parse_header(packet: bytes) -> tuple[int, bool, int, int, int]:
    """(payload type, marker, sequence number, timestamp, SSRC) of an RTP packet (for tests and diagnostics)."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    _, second, seq, timestamp, ssrc = _HEADER.unpack_from(packet)
    return second & 0x7F, bool(second & 0x80), seq, timestamp, ssrc
