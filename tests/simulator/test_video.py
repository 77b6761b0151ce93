"""The pre-encoded loops and the snapshot: what every RTSP client of a simulated camera receives."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from simulator import video
from simulator.rtp import MAX_PAYLOAD, packetize_frame, packetize_nal, parse_header, rtp_packets
from simulator.video import MAIN, PROFILES, SUB, EncodedLoop, LoopCache, get_loop

NAME = "Mầm non Đồng Xoài cam 1"


def _kinds(nals: tuple[bytes, ...]) -> list[int]:
    return [nal[0] & 0x1F for nal in nals]


def _decode(loop: EncodedLoop, repeats: int) -> list[av.VideoFrame]:
    codec = av.CodecContext.create("h264", "r")
    frames: list[av.VideoFrame] = []
    for frame in itertools.chain.from_iterable(itertools.repeat(loop.frames, repeats)):
        data = b"".join(b"\x00\x00\x00\x01" + nal for nal in frame.nals)
        frames.extend(codec.decode(av.Packet(data)))
    frames.extend(codec.decode(None))
    return frames


def test_profiles_are_the_onvif_main_and_sub_streams() -> None:
    assert PROFILES == (MAIN, SUB)
    assert (MAIN.width, MAIN.height, MAIN.path, MAIN.gop) == (1280, 720, "main", 50)
    assert (SUB.width, SUB.height, SUB.path, SUB.gop) == (640, 360, "sub", 50)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.path)
def test_snapshot_is_a_cached_jpeg_of_the_profile_size(profile: video.ProfileSpec) -> None:
    jpeg = video.snapshot_jpeg(NAME, profile)
    assert jpeg[:3] == b"\xff\xd8\xff"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (profile.height, profile.width, 3)
    assert video.snapshot_jpeg(NAME, profile) is jpeg
    assert video.snapshot_jpeg("another camera", profile) != jpeg


def test_the_picture_moves_every_frame() -> None:
    frames = [video.render_frame(NAME, SUB, i) for i in range(3)]
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])


async def test_loop_has_keyframes_every_gop_with_parameter_sets_in_band() -> None:
    loop = await get_loop(NAME, SUB, None)
    assert len(loop.frames) == 2 * SUB.gop
    assert [i for i, frame in enumerate(loop.frames) if frame.keyframe] == [0, SUB.gop]
    for frame in loop.frames:
        kinds = _kinds(frame.nals)
        if frame.keyframe:
            assert kinds[:3] == [7, 8, 5], kinds
            assert loop.sps in frame.nals and loop.pps in frame.nals
        else:
            assert 5 not in kinds and 7 not in kinds
        assert frame.duration == 3600
        assert all(not nal.startswith(b"\x00\x00\x01") for nal in frame.nals)
    assert loop.profile_level_id[:2] in ("42", "4d")  # baseline or main
    kbps = loop.byte_size * 8 / (loop.duration_ticks / 90_000) / 1000
    assert 0.7 * SUB.bitrate_kbps < kbps < 1.3 * SUB.bitrate_kbps


async def test_loop_decodes_cleanly_when_repeated() -> None:
    loop = await get_loop(NAME, SUB, None)
    frames = _decode(loop, 2)
    assert len(frames) == 2 * len(loop.frames)
    assert {(frame.width, frame.height) for frame in frames} == {(SUB.width, SUB.height)}
    assert frames[0].key_frame and frames[len(loop.frames)].key_frame


async def test_many_concurrent_callers_share_one_encode() -> None:
    cache = LoopCache()
    loops = await asyncio.gather(*(cache.get("shared-encode-cam", SUB, None) for _ in range(20)))
    assert cache.encodes == 1
    assert all(loop is loops[0] for loop in loops)
    assert await cache.get("shared-encode-cam", SUB, None) is loops[0]
    assert cache.encodes == 1


async def test_a_cancelled_caller_does_not_cancel_the_encode_for_others() -> None:
    cache = LoopCache()
    first = asyncio.ensure_future(cache.get("cancel-cam", SUB, None))
    second = asyncio.ensure_future(cache.get("cancel-cam", SUB, None))
    await asyncio.sleep(0)  # let both start waiting
    first.cancel()
    loop = await second
    assert len(loop.frames) == 2 * SUB.gop and cache.encodes == 1


async def test_disk_cache_survives_a_restart_and_ignores_damaged_files(tmp_path: Path) -> None:
    written = await LoopCache().get("disk-cam", SUB, tmp_path)
    files = await asyncio.to_thread(lambda: list(tmp_path.iterdir()))
    assert [f.name.startswith("loop-sub-") for f in files] == [True]

    restarted = LoopCache()
    loaded = await restarted.get("disk-cam", SUB, tmp_path)
    assert restarted.encodes == 0
    assert loaded == written

    await asyncio.to_thread(lambda: files[0].write_bytes(files[0].read_bytes()[:5000]))
    damaged = LoopCache()
    again = await damaged.get("disk-cam", SUB, tmp_path)
    assert damaged.encodes == 1 and len(again.frames) == len(written.frames)
    assert video.cache_file(tmp_path, "disk-cam", SUB) != video.cache_file(tmp_path, "disk-cam", MAIN)


def test_split_annexb_handles_both_start_code_lengths() -> None:
    stream = b"\x00\x00\x00\x01\x67\x01\x02\x00\x00\x01\x68\x03\x00\x00\x00\x01\x65\x00\x00\x03\x01"
    assert video.split_annexb(stream) == [b"\x67\x01\x02", b"\x68\x03", b"\x65\x00\x00\x03\x01"]


def test_small_nal_is_one_packet_and_large_nal_is_fu_a_that_reassembles() -> None:
    small = b"\x41" + bytes(100)
    assert packetize_nal(small) == [small]
    large = b"\x65" + bytes(range(256)) * 20
    fragments = packetize_nal(large)
    assert len(fragments) == -(-(len(large) - 1) // (MAX_PAYLOAD - 2))
    assert all(len(fragment) <= MAX_PAYLOAD for fragment in fragments)
    assert all(fragment[0] == (0x65 & 0xE0) | 28 for fragment in fragments)
    assert fragments[0][1] == 0x80 | 5 and fragments[-1][1] == 0x40 | 5
    assert all(fragment[1] == 5 for fragment in fragments[1:-1])
    assert bytes([(fragments[0][0] & 0xE0) | fragments[0][1] & 0x1F]) + b"".join(f[2:] for f in fragments) == large


def test_rtp_packets_number_sequentially_and_mark_the_frame_end() -> None:
    frame = packetize_frame(video.EncodedFrame((b"\x67" + bytes(10), b"\x65" + bytes(5000)), True, 3600))
    packets = rtp_packets(frame, 65534, 123456, 0xDEADBEEF)
    headers = [parse_header(packet) for packet in packets]
    assert [h[2] for h in headers] == [(65534 + i) & 0xFFFF for i in range(len(packets))]
    assert [h[1] for h in headers] == [False] * (len(packets) - 1) + [True]
    assert {(h[0], h[3], h[4]) for h in headers} == {(96, 123456, 0xDEADBEEF)}
