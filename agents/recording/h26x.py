"""H.264 and H.265 parameter sets: the picture size and the decoder configuration record an MP4 sample entry needs.

The recorder writes MP4 itself (fmp4.py), so it needs what a muxer reads from the stream: the width and height
(from the SPS) and the `avcC` (ISO/IEC 14496-15 5.3.3) or `hvcC` (8.3.3) record built from the parameter sets.
Only the fields these need are parsed; an SPS that cannot be parsed is `ParameterSetError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

H264 = "h264"
HEVC = "hevc"

H264_IDR = 5
H264_SPS = 7
H264_PPS = 8
HEVC_VPS = 32
HEVC_SPS = 33
HEVC_PPS = 34
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


class ParameterSetError(ValueError):
    """A parameter set is missing, truncated or uses something this parser does not read."""


def rbsp(nal: bytes) -> bytes:
    """The NAL unit's payload with emulation prevention bytes (00 00 03) removed."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class BitReader:
    """Big-endian bits with Exp-Golomb codes (H.264 7.2, 9.1)."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0

    def u(self, count: int) -> int:
        if count == 0:
            return 0
        if self._pos + count > self._bits:
            raise ParameterSetError("parameter set ends early")
        self._pos += count
        return (self._value >> (self._bits - self._pos)) & ((1 << count) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ParameterSetError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


@dataclass(frozen=True)
class VideoFormat:
    """What the MP4 sample entry says about the stream."""

    codec: str
    """`h264` or `hevc` (FFmpeg's names)."""
    width: int
    height: int
    config: bytes
    """The avcC or hvcC record (also the decoder's extradata)."""

    @property
    def sample_entry(self) -> bytes:
        return b"avc1" if self.codec == H264 else b"hvc1"

    @property
    def config_box(self) -> bytes:
        return b"avcC" if self.codec == H264 else b"hvcC"


# ---------------------------------------------------------------------------------------------------------------
# H.264


def _skip_scaling_list(reader: BitReader, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + reader.se() + 256) % 256
        last = following or last


def h264_format(sps: bytes, pps: bytes) -> VideoFormat:
    """The sample entry of an H.264 stream from its SPS and PPS (NAL units without start codes)."""
    if len(sps) < 4 or sps[0] & 0x1F != H264_SPS or not pps or pps[0] & 0x1F != H264_PPS:
        raise ParameterSetError("not an H.264 SPS and PPS")
    reader = BitReader(rbsp(sps[1:]))
    profile = reader.u(8)
    reader.u(16)  # constraint flags, level
    reader.ue()  # seq_parameter_set_id
    chroma = 1
    depth_luma = depth_chroma = 8
    if profile in _HIGH_PROFILES:
        chroma = reader.ue()
        if chroma == 3:
            reader.u(1)
        depth_luma = reader.ue() + 8
        depth_chroma = reader.ue() + 8
        reader.u(1)
        if reader.u(1):
            for i in range(12 if chroma == 3 else 8):
                if reader.u(1):
                    _skip_scaling_list(reader, 16 if i < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    poc_type = reader.ue()
    if poc_type == 0:
        reader.ue()
    elif poc_type == 1:
        reader.u(1)
        reader.se()
        reader.se()
        for _ in range(reader.ue()):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.u(1)
    width = (reader.ue() + 1) * 16
    map_height = reader.ue() + 1
    frame_mbs_only = reader.u(1)
    if not frame_mbs_only:
        reader.u(1)
    reader.u(1)
    height = (2 - frame_mbs_only) * map_height * 16
    if reader.u(1):
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        crop_x = 1 if chroma in (0, 3) else 2
        crop_y = (2 - frame_mbs_only) * (2 if chroma == 1 else 1)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    if width <= 0 or height <= 0:
        raise ParameterSetError("SPS gives no picture size")
    record = bytearray([1, sps[1], sps[2], sps[3], 0xFF, 0xE1])
    record += struct.pack(">H", len(sps)) + sps + b"\x01" + struct.pack(">H", len(pps)) + pps
    if profile in (100, 110, 122, 244):
        record += bytes([0xFC | chroma, 0xF8 | (depth_luma - 8), 0xF8 | (depth_chroma - 8), 0])
    return VideoFormat(H264, width, height, bytes(record))


# ---------------------------------------------------------------------------------------------------------------
# H.265


def hevc_format(vps: bytes, sps: bytes, pps: bytes) -> VideoFormat:
    """The sample entry of an H.265 stream from its VPS, SPS and PPS (NAL units without start codes)."""
    if not vps or not pps or len(sps) < 16 or (sps[0] >> 1) & 0x3F != HEVC_SPS:
        raise ParameterSetError("not an H.265 VPS, SPS and PPS")
    payload = rbsp(sps[2:])
    reader = BitReader(payload)
    reader.u(4)  # sps_video_parameter_set_id
    sub_layers = reader.u(3)
    nested = reader.u(1)
    general = payload[1:13]  # profile space/tier/idc, 32 compatibility flags, 48 constraint flags, level
    reader.u(96)
    present = [(reader.u(1), reader.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        reader.u(2 * (8 - sub_layers))
    for profile_present, level_present in present:
        reader.u(88 if profile_present else 0)
        reader.u(8 if level_present else 0)
    reader.ue()  # sps_seq_parameter_set_id
    chroma = reader.ue()
    if chroma == 3:
        reader.u(1)
    width, height = reader.ue(), reader.ue()
    if reader.u(1):
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        width -= (left + right) * (2 if chroma in (1, 2) else 1)
        height -= (top + bottom) * (2 if chroma == 1 else 1)
    depth_luma, depth_chroma = reader.ue() + 8, reader.ue() + 8
    if width <= 0 or height <= 0:
        raise ParameterSetError("SPS gives no picture size")
    record = bytearray([1])
    record += general
    record += struct.pack(">HBBBBH", 0xF000, 0xFC, 0xFC | chroma, 0xF8 | (depth_luma - 8), 0xF8 | (depth_chroma - 8), 0)
    record.append(((sub_layers + 1) << 3) | (nested << 2) | 3)
    record.append(3)
    for kind, nal in ((HEVC_VPS, vps), (HEVC_SPS, sps), (HEVC_PPS, pps)):
        record += struct.pack(">BHH", 0x80 | kind, 1, len(nal)) + nal
    return VideoFormat(HEVC, width, height, bytes(record))
