"""The on_keyframe hook: sampling at most every interval, decoding in a worker thread, snapshots, verdicts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from agents.health import monitor as monitor_module
from agents.health.config import HealthConfig
from agents.health.monitor import ImageHealth, snapshot_name
from agents.recording.hooks import Keyframe
from common.clock import ManualClock
from tests.waiting import eventually

CAMERA = "5d6a2c1e-0f43-5b8e-9c55-3e0f3e7b9a10"


@pytest.fixture
def keyframes(simulator_mp4: Path) -> tuple[list[Keyframe], str]:
    """The keyframes of the simulator's loop as the recorder hands them over (avcC and length-prefixed NAL units),
    and the codec's extradata."""
    with av.open(str(simulator_mp4)) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        found = [Keyframe("h264", extradata, bytes(p)) for p in container.demux(stream) if p.is_keyframe]
    return found, extradata.hex()


@pytest.fixture
def health(tmp_path: Path) -> Iterator[tuple[ImageHealth, ManualClock]]:
    clock = ManualClock()
    health = ImageHealth(HealthConfig(interval_s=10), tmp_path / "snapshots", clock=clock)
    yield health, clock
    health.close()


def samples(health: ImageHealth) -> int:
    figures = health.figures().get(CAMERA)
    return 0 if figures is None else figures.samples_total


async def test_samples_at_most_every_interval_and_keeps_a_snapshot(
    health: tuple[ImageHealth, ManualClock], keyframes: tuple[list[Keyframe], str]
) -> None:
    monitor, clock = health
    (first, second), _ = keyframes
    monitor.on_keyframe(CAMERA, first)
    await eventually(lambda: samples(monitor) == 1)
    for _ in range(4):  # keyframes every 2 s: not due before 10 s
        await clock.advance(2)
        monitor.on_keyframe(CAMERA, second)
    assert samples(monitor) == 1
    await clock.advance(1.6)  # 9.6 s after the first: due (a keyframe a little early still counts)
    monitor.on_keyframe(CAMERA, second)
    await eventually(lambda: samples(monitor) == 2)

    figures = monitor.figures()[CAMERA]
    assert not (figures.dark or figures.blurred or figures.frozen)
    assert figures.brightness is not None and 0.4 < figures.brightness < 0.6
    assert figures.change is not None and figures.change > 0.1
    assert figures.sampled_at == clock.now()
    path = monitor.snapshot_path(CAMERA)
    assert path is not None and path.parent == monitor.snapshot_dir
    jpeg = monitor.snapshot(CAMERA)
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape == (720, 1280, 3)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind


async def test_the_same_keyframe_again_and_again_is_frozen_until_the_picture_moves(
    health: tuple[ImageHealth, ManualClock], keyframes: tuple[list[Keyframe], str]
) -> None:
    monitor, clock = health
    (first, second), _ = keyframes
    for n in range(1, 5):
        monitor.on_keyframe(CAMERA, first)
        await eventually(lambda n=n: samples(monitor) == n)  # type: ignore[misc]
        await clock.advance(10)
    assert monitor.figures()[CAMERA].frozen
    monitor.on_keyframe(CAMERA, second)
    await eventually(lambda: samples(monitor) == 5)
    assert not monitor.figures()[CAMERA].frozen


async def test_an_undecodable_keyframe_is_counted_and_the_next_one_is_sampled(
    health: tuple[ImageHealth, ManualClock], keyframes: tuple[list[Keyframe], str]
) -> None:
    monitor, clock = health
    (first, _), extradata = keyframes
    monitor.on_keyframe(CAMERA, Keyframe("h264", bytes.fromhex(extradata), b"\x00\x00\x00\x05garbage"))
    await eventually(lambda: CAMERA in monitor.figures() and monitor.figures()[CAMERA].errors_total == 1)
    await clock.advance(10)
    monitor.on_keyframe(CAMERA, first)
    await eventually(lambda: samples(monitor) == 1)


async def test_decoding_happens_in_a_worker_thread_one_sample_in_flight_per_camera(
    tmp_path: Path, keyframes: tuple[list[Keyframe], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (first, _), _ = keyframes
    release = threading.Event()
    threads: list[str] = []
    real = monitor_module.decode_keyframe

    def gated(codec: str, extradata: bytes, data: bytes) -> av.VideoFrame:
        threads.append(threading.current_thread().name)
        release.wait(10)
        return real(codec, extradata, data)

    monkeypatch.setattr(monitor_module, "decode_keyframe", gated)
    monitor = ImageHealth(HealthConfig(interval_s=0), None)
    try:
        for _ in range(5):  # returns at once although the worker is stuck; the later keyframes are skipped
            monitor.on_keyframe(CAMERA, first)
        await eventually(lambda: len(threads) == 1)
        release.set()
        await eventually(lambda: samples(monitor) == 1)
        assert threads[0].startswith("image-health") and threads[0] != threading.current_thread().name
        assert monitor.snapshot(CAMERA) is None  # no snapshot directory given
    finally:
        release.set()
        monitor.close()


def test_snapshot_names_stay_inside_the_directory() -> None:
    assert snapshot_name(CAMERA) == CAMERA
    for hostile in ("../../etc/passwd", "/abs", "..", "a/b", "x" * 300, ""):
        name = snapshot_name(hostile)
        assert "/" not in name and not name.startswith(".") and len(name) <= 128
