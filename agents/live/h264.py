"""H.264 bitstream fixes so that every keyframe a viewer gets is decodable by itself.

WebRTC carries Annex-B NAL units (start codes); a browser joining mid-stream needs the SPS and PPS in band
before the IDR. Cameras differ: most repeat SPS/PPS before every IDR, some send them only out of band (RTSP
`sprop-parameter-sets`, which FFmpeg exposes as the stream's extradata), and MP4-style sources use length
prefixes (AVCC) with the parameter sets in an `avcC` record. `ParameterSets` turns whichever form into Annex-B
packets with SPS/PPS before each keyframe that lacks them. Pure functions on bytes: no PyAV here.
"""

from __future__ import annotations

from collections.abc import Iterator

START = b"\x00\x00\x00\x01"
NAL_SPS = 7
NAL_PPS = 8
NAL_IDR = 5
NAL_SLICE = 1


class BitstreamError(ValueError):
    """The bytes are not H.264 in a form this module understands."""


def is_annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(START)


def split_annexb(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex-B buffer, without their start codes (3- or 4-byte)."""
    begin = _next_start(data, 0)
    while begin is not None:
        payload = begin[1]
        following = _next_start(data, payload)
        end = following[0] if following is not None else len(data)
        nal = data[payload:end]
        if following is not None:
            nal = nal.rstrip(b"\x00")  # zero bytes before a start code are padding, not NAL payload
        if nal:
            yield nal
        begin = following


def _next_start(data: bytes, offset: int) -> tuple[int, int] | None:
    """(where the start code begins, where its NAL unit begins) of the next start code at or after `offset`."""
    at = data.find(b"\x00\x00\x01", offset)
    if at < 0:
        return None
    return (at - 1 if at > offset and data[at - 1] == 0 else at), at + 3


def split_avcc(data: bytes, length_size: int) -> Iterator[bytes]:
    """The NAL units of a length-prefixed (AVCC) buffer."""
    i, n = 0, len(data)
    while i < n:
        if i + length_size > n:
            raise BitstreamError("a NAL length runs past the end of the packet")
        size = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        if size == 0 or i + size > n:
            raise BitstreamError("a NAL unit runs past the end of the packet")
        yield data[i : i + size]
        i += size


def _first_nal_type(data: bytes) -> int | None:
    """The type of the first NAL unit of an Annex-B buffer, without splitting it (None if not Annex-B)."""
    if data.startswith(START) and len(data) > 4:
        return data[4] & 0x1F
    if data.startswith(b"\x00\x00\x01") and len(data) > 3:
        return data[3] & 0x1F
    return None


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def join_annexb(nals: list[bytes]) -> bytes:
    return b"".join(START + nal for nal in nals)


def parse_avcc_record(extradata: bytes) -> tuple[list[bytes], int]:
    """The SPS and PPS NAL units of an `avcC` record, and its NAL length size."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise BitstreamError("not an avcC record")
    length_size = (extradata[4] & 0x03) + 1
    nals: list[bytes] = []
    i = 5
    for count_mask in (0x1F, 0xFF):
        if i >= len(extradata):
            raise BitstreamError("the avcC record is cut short")
        count = extradata[i] & count_mask
        i += 1
        for _ in range(count):
            if i + 2 > len(extradata):
                raise BitstreamError("the avcC record is cut short")
            size = int.from_bytes(extradata[i : i + 2], "big")
            i += 2
            if i + size > len(extradata):
                raise BitstreamError("the avcC record is cut short")
            nals.append(extradata[i : i + size])
            i += size
    return nals, length_size


class ParameterSets:
    """Annex-B output with SPS/PPS before every keyframe; remembers the latest in-band SPS/PPS too."""

    def __init__(self, extradata: bytes | None) -> None:
        self._length_size: int | None = None
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self.inserted = 0
        """Keyframes that needed the parameter sets put in front of them."""
        if extradata:
            if extradata[0] == 1:
                nals, self._length_size = parse_avcc_record(extradata)
            else:
                nals = list(split_annexb(extradata))
            self._remember(nals)

    def _remember(self, nals: list[bytes]) -> None:
        for nal in nals:
            if nal_type(nal) == NAL_SPS:
                self._sps = nal
            elif nal_type(nal) == NAL_PPS:
                self._pps = nal

    def fix(self, data: bytes, keyframe: bool) -> bytes:
        """The packet as Annex-B, with SPS/PPS in front when it is a keyframe without them."""
        if not keyframe and self._length_size is None and _first_nal_type(data) == NAL_SLICE:
            return data  # the common case: a delta frame already in Annex-B passes untouched
        if self._length_size is not None and not is_annexb(data):
            nals = list(split_avcc(data, self._length_size))
        elif is_annexb(data):
            nals = list(split_annexb(data))
        else:
            raise BitstreamError("the packet is neither Annex-B nor length-prefixed with a known length size")
        types = {nal_type(nal) for nal in nals}
        self._remember(nals)
        missing = (keyframe or NAL_IDR in types) and not {NAL_SPS, NAL_PPS} <= types
        if missing and self._sps is not None and self._pps is not None:
            nals = [self._sps, self._pps, *(n for n in nals if nal_type(n) not in (NAL_SPS, NAL_PPS))]
            self.inserted += 1
        return join_annexb(nals)
