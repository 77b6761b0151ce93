"""PacketTrack: bounded, ends cleanly, carries pts and time base, paces bursts."""

from __future__ import annotations

import asyncio
import fractions

import pytest
from aiortc.mediastreams import MediaStreamError

from rtc.packet_track import PacketTrack


async def test_packets_carry_their_timestamp_and_time_base() -> None:
    track = PacketTrack("video")
    assert track.push(b"\x00\x00\x00\x01\x65", 3600)
    packet = await track.recv()
    assert bytes(packet) == b"\x00\x00\x00\x01\x65"
    assert packet.pts == 3600 and packet.time_base == fractions.Fraction(1, 90_000)
    audio = PacketTrack("audio")
    audio.push(b"\x01", 960)
    assert (await audio.recv()).time_base == fractions.Fraction(1, 48_000)


async def test_the_queue_is_bounded_and_cleared_on_demand() -> None:
    track = PacketTrack("video", max_packets=3)
    assert all(track.push(b"x" * 10, i) for i in range(3))
    assert not track.push(b"y", 3)
    assert track.pending == 3 and track.pending_bytes == 30
    assert track.clear() == 3 and track.pending == 0 and track.pending_bytes == 0
    assert track.push(b"z", 4)


async def test_end_sends_what_is_queued_then_ends() -> None:
    track = PacketTrack("video")
    track.push(b"a", 0)
    track.push(b"b", 1)
    track.end()
    assert not track.push(b"c", 2)
    assert [bytes(await track.recv()) for _ in range(2)] == [b"a", b"b"]
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert track.readyState == "ended" and not track.accepting


async def test_a_waiting_reader_wakes_on_push_and_on_stop() -> None:
    track = PacketTrack("video")
    reader = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    assert not reader.done()
    track.push(b"a", 0)
    assert bytes(await reader) == b"a"
    reader = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await reader


async def test_a_burst_is_paced() -> None:
    """Ten 10 kB packets at 8 Mbit/s take at least 90 ms to leave (the first goes at once)."""
    track = PacketTrack("video", pace_bps=8_000_000)
    for i in range(10):
        track.push(b"x" * 10_000, i)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(10):
        await track.recv()
    assert loop.time() - started >= 0.09


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        PacketTrack("data")
    with pytest.raises(ValueError, match="max_packets"):
        PacketTrack("video", max_packets=0)
