"""RTP payloads of H.264 (RFC 6184) and H.265 (RFC 7798) back into access units, as MP4 samples.

`Depacketizer.packet(data, start, end)` takes one RTP packet that lies at `data[start:end]` (the bytes the
connection read, so nothing is copied before parsing) and calls `on_frame` for each access unit that is
complete: when the marker bit is set, or when a packet with another timestamp begins the next one. A frame's
data is its NAL units, each with a 4-byte big-endian length (the MP4 sample format). Parameter sets seen in the
stream (and those from the SDP) are kept: the segment header is built from them. Fragmented NAL units whose
start was lost, and packetization modes this does not read (MTAP, FU-B, PACI), are dropped and counted.
RTP timestamps are unwrapped (32 bits wrap after 13 hours at 90 kHz) so that they only grow with time.
"""

from __future__ import annotations

import abc
import struct
from collections.abc import Callable
from dataclasses import dataclass

from agents.recording.h26x import H264, H264_IDR, H264_PPS, H264_SPS, HEVC, HEVC_PPS, HEVC_VPS

_RTP = struct.Struct(">BBHI")
_LENGTH = struct.Struct(">I")
_U16 = struct.Struct(">H")
_WRAP = 1 << 32
_HALF = 1 << 31


@dataclass(slots=True)
class Frame:
    """One access unit: its RTP time (unwrapped, 90 kHz), whether it is a keyframe, its MP4 sample bytes."""

    timestamp: int
    key: bool
    data: bytes


FrameSink = Callable[[Frame], None]


class Depacketizer(abc.ABC):
    """Common state: the access unit being gathered, timestamps, parameter sets; one subclass per codec."""

    codec = ""

    def __init__(self, on_frame: FrameSink) -> None:
        self.on_frame = on_frame
        self.params: dict[int, bytes] = {}
        """The latest parameter set of each NAL type (SPS, PPS; VPS for H.265)."""
        self.dropped = 0
        """NAL units dropped: fragments whose start was lost, packetizations not read here."""
        self.packets = 0
        self._parts: list[bytes] = []
        self._key = False
        self._raw: int | None = None
        self._extended = 0
        self._fragment: list[bytes] | None = None

    def packet(self, data: bytes, start: int, end: int) -> None:
        """One RTP packet at `data[start:end]`."""
        if end - start < 13:
            return
        first, second, _, raw = _RTP.unpack_from(data, start)
        if first >> 6 != 2:
            return
        self.packets += 1
        header = start + 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension
            if header + 4 > end:
                return
            header += 4 + 4 * _U16.unpack_from(data, header + 2)[0]
        if first & 0x20:  # padding
            end -= data[end - 1]
        if header >= end:
            return
        if raw != self._raw:
            if self._parts:
                self._emit()
            self._fragment = None
            if self._raw is not None:
                delta = (raw - self._raw) % _WRAP
                self._extended += delta - _WRAP if delta >= _HALF else delta
            self._raw = raw
        self._payload(data, header, end)
        if second & 0x80 and self._parts:
            self._emit()

    def flush(self) -> None:
        """The stream ended: hand over the access unit being gathered, if any."""
        if self._parts:
            self._emit()

    def _emit(self) -> None:
        frame = Frame(self._extended, self._key, b"".join(self._parts))
        self._parts = []
        self._key = False
        self.on_frame(frame)

    def _add(self, nal: bytes) -> None:
        parts = self._parts
        parts.append(_LENGTH.pack(len(nal)))
        parts.append(nal)

    def _fu(self, fu: int, header: bytes | None, data: bytes, start: int, end: int) -> None:
        """One fragmentation unit (FU-A, H.265 FU): `fu` its FU header (the end bit), `header` the NAL unit
        header it restores, given with the first fragment only, and its part of the NAL unit at
        `data[start:end]`. A fragment whose first was lost is dropped."""
        if header is not None:
            self._fragment = [header, data[start:end]]
        elif self._fragment is None:
            self.dropped += 1
            return
        else:
            self._fragment.append(data[start:end])
        if fu & 0x40:
            nal = b"".join(self._fragment)
            self._fragment = None
            self._nal(nal)

    def _aggregated(self, data: bytes, pos: int, end: int) -> None:
        """The NAL units of an aggregation packet (STAP-A, H.265 AP) from `pos`, each after its 16-bit size."""
        while pos + 2 < end:
            size = _U16.unpack_from(data, pos)[0]
            if not size or pos + 2 + size > end:
                break
            self._nal(data[pos + 2 : pos + 2 + size])
            pos += 2 + size

    @abc.abstractmethod
    def _nal(self, nal: bytes) -> None:
        """One whole NAL unit: note keyframes and parameter sets (by the codec's NAL types), then `_add` it."""

    @abc.abstractmethod
    def _payload(self, data: bytes, start: int, end: int) -> None:
        """One RTP payload (`data[start:end]`): the codec's packetization (single NAL, aggregation, fragments)."""


class H264Depacketizer(Depacketizer):
    """RFC 6184 packetization modes 0 and 1: single NAL unit packets, STAP-A, FU-A."""

    codec = H264

    def _nal(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == H264_IDR:
            self._key = True
        elif kind in (H264_SPS, H264_PPS):
            self.params[kind] = nal
        self._add(nal)

    def _payload(self, data: bytes, start: int, end: int) -> None:
        indicator = data[start]
        kind = indicator & 0x1F
        if kind == 28:  # FU-A
            if end - start < 3:
                return
            fu = data[start + 1]
            header = bytes(((indicator & 0xE0) | (fu & 0x1F),)) if fu & 0x80 else None
            self._fu(fu, header, data, start + 2, end)
        elif 0 < kind < 24:
            self._nal(data[start:end])
        elif kind == 24:  # STAP-A
            self._aggregated(data, start + 1, end)
        else:
            self.dropped += 1


class HevcDepacketizer(Depacketizer):
    """RFC 7798 without DONL (sprop-max-don-diff 0): single NAL unit packets, aggregation packets, FUs."""

    codec = HEVC

    def _nal(self, nal: bytes) -> None:
        kind = (nal[0] >> 1) & 0x3F
        if 16 <= kind <= 23:  # IRAP pictures: BLA, IDR, CRA
            self._key = True
        elif HEVC_VPS <= kind <= HEVC_PPS:
            self.params[kind] = nal
        self._add(nal)

    def _payload(self, data: bytes, start: int, end: int) -> None:
        if end - start < 3:
            return
        first = data[start]
        kind = (first >> 1) & 0x3F
        if kind == 49:  # FU
            if end - start < 4:
                return
            fu = data[start + 2]
            header = bytes(((first & 0x81) | ((fu & 0x3F) << 1), data[start + 1])) if fu & 0x80 else None
            self._fu(fu, header, data, start + 3, end)
        elif kind < 48:
            self._nal(data[start:end])
        elif kind == 48:  # aggregation packet
            self._aggregated(data, start + 2, end)
        else:
            self.dropped += 1


def for_codec(encoding: str, on_frame: FrameSink) -> Depacketizer:
    """The depacketizer for an SDP encoding name (H264, H265); ValueError for anything else."""
    name = encoding.upper()
    if name == "H264":
        return H264Depacketizer(on_frame)
    if name in ("H265", "HEVC"):
        return HevcDepacketizer(on_frame)
    raise ValueError(f"the recorder does not read {encoding!r} streams (H.264 and H.265 only)")
