"""The recorder on a small real volume (a 2 MB tmpfs; needs root), with retention's hooks: the floor is held
before each segment and recording goes on; without a floor the disk fills, writes fail with ENOSPC, retention
deletes, and recording resumes by itself. A held segment survives both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.discovery.credentials import Login
from agents.recording.config import RecordingConfig
from agents.recording.index import SegmentIndex
from agents.recording.supervisor import RecordingSupervisor
from agents.storage.config import RetentionConfig
from agents.storage.retention import Retention
from protocol.camera import CameraReport, CameraState, StreamProfile
from simulator.camera import SimulatedCamera
from simulator.spec import CameraSpec, Quirks
from tests.storage.fakes import files_under, tmpfs_volume
from tests.waiting import eventually

KB = 1024
MB = 1024 * KB
HOST = "127.0.1.201"
pytestmark = pytest.mark.slow


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    with tmpfs_volume(tmp_path / "volume", "2m") as mount:
        yield mount


@pytest.fixture
async def camera(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SimulatedCamera]:
    spec = CameraSpec(name="disk-test", host=HOST, http_port=0, rtsp_port=0, quirks=Quirks(no_auth=True))
    simulated = SimulatedCamera(spec, cache_dir=tmp_path_factory.getbasetemp() / "loops")
    await simulated.start()
    try:
        yield simulated
    finally:
        await simulated.stop()


def report(camera: SimulatedCamera) -> CameraReport:
    now = datetime.now(UTC)
    main = StreamProfile(
        token="main", name="main", role="main", encoding="H264", width=1280, height=720,
        stream_uri=camera.stream_urls["main"],
    )  # fmt: skip
    return CameraReport(
        endpoint_ref=camera.spec.endpoint_ref,
        address=HOST,
        state=CameraState.READY,
        reason="test",
        profiles=[main],
        first_seen=now,
        last_seen=now,
        changed_at=now,
    )


async def record_until(
    volume: Path, tmp_path: Path, camera: SimulatedCamera, config: RetentionConfig, done: str
) -> tuple[Retention, RecordingSupervisor, SegmentIndex]:
    index = await SegmentIndex.open(tmp_path / "recordings.db")
    retention = Retention(config, volume, index)
    supervisor = RecordingSupervisor(
        RecordingConfig(segment_s=1, fragment_s=0.5, fsync=False, reconnect_base_s=0.1, reconnect_cap_s=0.5),
        volume,
        index,
        lambda ref, address: Login("", ""),
        before_segment=retention.before_segment,
        on_write_error=retention.on_write_error,
    )
    supervisor.sync([report(camera)])
    task = asyncio.create_task(supervisor.run())
    try:
        await eventually(lambda: sum(s.segments_total for s in supervisor.stats().values()) >= 2, timeout=30)
        # Hold the first finished segment, as a technician would.
        first = (await index.oldest(1))[0]
        assert await index.set_hold(first.camera, first.start, first.end, True) == 1
        if done == "floor":
            await eventually(lambda: retention.stats.deleted["floor"] >= 3, timeout=60)
        else:
            await eventually(lambda: retention.stats.deleted["no_space"] >= 2, timeout=60)
            written = sum(s.segments_total for s in supervisor.stats().values())
            await eventually(lambda: sum(s.segments_total for s in supervisor.stats().values()) >= written + 2)
        assert not task.done()
        left = await index.all_segments()
        assert any(s.id == first.id and s.held for s in left)
        assert (volume / first.path).exists()
    finally:
        supervisor.stop()
        await asyncio.wait_for(task, 30)
    return retention, supervisor, index


async def test_the_floor_is_held_while_recording_on_a_full_volume(
    volume: Path, tmp_path: Path, camera: SimulatedCamera
) -> None:
    config = RetentionConfig(floor_bytes=1 * MB, floor_percent=0, headroom_bytes=128 * KB)
    retention, supervisor, index = await record_until(volume, tmp_path, camera, config, "floor")
    try:
        stats = next(iter(supervisor.stats().values()))
        assert stats.write_errors_total == 0
        assert retention.stats.write_errors == {}
        # Every segment left is on disk and the index agrees with the disk (the open one was closed at stop).
        left = await index.all_segments()
        on_disk = files_under(volume)
        assert {s.path for s in left} == on_disk
    finally:
        await index.close()


async def test_without_a_floor_enospc_is_survived_and_recording_resumes(
    volume: Path, tmp_path: Path, camera: SimulatedCamera
) -> None:
    config = RetentionConfig(floor_bytes=0, floor_percent=0, headroom_bytes=0, enospc_delete_segments=2)
    retention, supervisor, index = await record_until(volume, tmp_path, camera, config, "no_space")
    try:
        stats = next(iter(supervisor.stats().values()))
        assert stats.write_errors_total >= 1
        assert retention.stats.write_errors["no_space"] >= 1
        assert stats.gaps_total >= 1  # the failed write is a recorded gap
    finally:
        await index.close()
