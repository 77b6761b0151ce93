"""The agent's RTSP packet source against a simulated camera: what a publication gets, and how reading ends."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from agents.discovery.credentials import Login
from agents.live.h264 import nal_type, split_annexb
from agents.live.source import EncodedPacket, RtspSource, SourceEnd
from agents.recording.cameras import with_credentials
from simulator.camera import SimulatedCamera
from simulator.spec import CameraSpec, Quirks
from tests.agents.cameras import PASSWORD, running
from tests.ports import free_port

HOST = "127.0.9.70"


@pytest.fixture
async def camera() -> AsyncIterator[SimulatedCamera]:
    spec = CameraSpec(name="source", host=HOST, http_port=free_port(HOST), rtsp_port=free_port(HOST),
                      password=PASSWORD, quirks=Quirks(drop_after_s=1.5))  # fmt: skip
    async with running([spec]) as cameras:
        yield cameras[0]


async def read(source: RtspSource, count: int) -> list[EncodedPacket | SourceEnd]:
    task = asyncio.create_task(source.run())
    items: list[EncodedPacket | SourceEnd] = []
    try:
        while len(items) < count:
            item = await asyncio.wait_for(source.get(), 10)
            items.append(item)
            if isinstance(item, SourceEnd):
                break
    finally:
        source.stop()
        await asyncio.wait_for(task, 10)
    return items


async def test_the_first_packet_is_the_keyframe_with_its_parameter_sets(camera: SimulatedCamera) -> None:
    """The first packet after PLAY comes without a timestamp; it is kept (dropping it left a first viewer
    waiting a whole keyframe interval), one frame before the next, and timestamps then follow at 25 fps."""
    url = with_credentials(camera.stream_urls["sub"], Login("admin", PASSWORD))
    items = await read(RtspSource(url, name="source"), 30)
    packets = [i for i in items if isinstance(i, EncodedPacket)]
    assert len(packets) == 30
    first = packets[0]
    assert first.keyframe and first.pts == 0
    assert [nal_type(n) for n in split_annexb(first.data)][:3] == [7, 8, 5]
    steps = {b.pts - a.pts for a, b in itertools.pairwise(packets)}
    assert steps == {3600}


async def test_the_camera_ending_the_stream_is_reported_as_ended(camera: SimulatedCamera) -> None:
    url = with_credentials(camera.stream_urls["sub"], Login("admin", PASSWORD))
    items = await read(RtspSource(url, name="source"), 1000)
    end = items[-1]
    assert isinstance(end, SourceEnd) and end.reason == "ended"
    assert 25 <= end.packets <= 60  # 1.5 s at 25 fps, give or take the start


async def test_a_refused_login_is_open_failed_without_the_password(camera: SimulatedCamera) -> None:
    wrong = "wr0ng:p@ss/word"
    url = with_credentials(camera.stream_urls["sub"], Login("admin", wrong))
    items = await read(RtspSource(url, name="source", open_timeout_s=5), 1)
    end = items[0]
    assert isinstance(end, SourceEnd) and end.reason == "open_failed"
    assert wrong not in end.detail and "wr0ng%3Ap%40ss" not in end.detail
