"""Keyframes made decodable by themselves: SPS/PPS put before keyframes that lack them, AVCC turned into Annex-B."""

from __future__ import annotations

import pytest

from agents.live.h264 import BitstreamError, ParameterSets, nal_type, split_annexb

SPS = b"\x67\x42\xc0\x1e\xda"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00\x33"
P_SLICE = b"\x41\x9a\x02\x11"


def annexb(*nals: bytes, long: bool = True) -> bytes:
    start = b"\x00\x00\x00\x01" if long else b"\x00\x00\x01"
    return b"".join(start + nal for nal in nals)


def avcc(*nals: bytes, size: int = 4) -> bytes:
    return b"".join(len(nal).to_bytes(size, "big") + nal for nal in nals)


def avcc_record(length_size: int = 4) -> bytes:
    return (
        bytes([1, 0x42, 0xC0, 0x1E, 0xFC | (length_size - 1), 0xE1])
        + len(SPS).to_bytes(2, "big")
        + SPS
        + b"\x01"
        + len(PPS).to_bytes(2, "big")
        + PPS
    )


def types(data: bytes) -> list[int]:
    return [nal_type(n) for n in split_annexb(data)]


def test_split_handles_three_and_four_byte_start_codes() -> None:
    data = annexb(SPS) + annexb(PPS, long=False) + annexb(IDR)
    assert list(split_annexb(data)) == [SPS, PPS, IDR]


def test_in_band_parameter_sets_are_left_alone() -> None:
    fixer = ParameterSets(None)
    keyframe = annexb(SPS, PPS, IDR)
    assert fixer.fix(keyframe, True) == keyframe
    assert fixer.inserted == 0


@pytest.mark.parametrize("long", [True, False])
def test_out_of_band_parameter_sets_go_before_each_keyframe(long: bool) -> None:
    fixer = ParameterSets(annexb(SPS, PPS, long=long))  # RTSP sprop-parameter-sets, as FFmpeg's extradata
    assert types(fixer.fix(annexb(IDR), True)) == [7, 8, 5]
    assert types(fixer.fix(annexb(P_SLICE), False)) == [1]
    assert types(fixer.fix(annexb(IDR), True)) == [7, 8, 5]
    assert fixer.inserted == 2


def test_an_idr_not_flagged_as_keyframe_still_gets_them() -> None:
    fixer = ParameterSets(annexb(SPS, PPS))
    assert types(fixer.fix(annexb(IDR), False)) == [7, 8, 5]


def test_parameter_sets_seen_in_band_are_remembered_for_later_keyframes() -> None:
    fixer = ParameterSets(None)
    fixer.fix(annexb(SPS, PPS, IDR), True)
    assert types(fixer.fix(annexb(IDR), True)) == [7, 8, 5]


def test_without_any_parameter_sets_the_keyframe_passes_as_it_is() -> None:
    fixer = ParameterSets(None)
    assert fixer.fix(annexb(IDR), True) == annexb(IDR)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_avcc_packets_become_annexb_with_the_record_s_parameter_sets(size: int) -> None:
    fixer = ParameterSets(avcc_record(size))
    assert fixer.fix(avcc(IDR, size=size), True) == annexb(SPS, PPS, IDR)
    assert fixer.fix(avcc(P_SLICE, size=size), False) == annexb(P_SLICE)


@pytest.mark.parametrize("extradata", [b"\x01\x42", b"\x01\x42\xc0\x1e\xff\xe1\x00\x40" + SPS, avcc_record()[:-2]])
def test_a_damaged_avcc_record_is_refused(extradata: bytes) -> None:
    with pytest.raises(BitstreamError):
        ParameterSets(extradata)


def test_a_damaged_avcc_packet_is_refused() -> None:
    fixer = ParameterSets(avcc_record())
    with pytest.raises(BitstreamError):
        fixer.fix(b"\x00\x00\x00\x40" + IDR, True)


def test_trailing_zero_padding_is_not_part_of_a_nal_unit() -> None:
    assert list(split_annexb(annexb(SPS) + b"\x00\x00" + annexb(PPS))) == [SPS, PPS]
