"""Retention over the recorder's real SegmentIndex (SQLite): holds set through the index survive the floor and
age, incomplete segments (being written) are never touched, and the index agrees with the disk afterwards."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agents.recording.index import SegmentIndex
from agents.storage import holds
from agents.storage.config import RetentionConfig
from agents.storage.retention import Retention
from common.clock import ManualClock
from tests.storage.fakes import FakeVolume, files_under

KB = 1024
CAMERA = "urn:uuid:5d6a2c1e-0f43-5b8e-9c55-3e0f3e7b9a10"
OTHER = "urn:uuid:0b6c9a4e-2222-4a6b-9a51-000000000002"


def write(root: Path, relative: str, size: int) -> None:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(b"\0" * size)


async def test_retention_over_the_real_index(tmp_path: Path) -> None:
    clock = ManualClock()
    root = tmp_path / "recordings"
    root.mkdir()
    async with await SegmentIndex.open(tmp_path / "recordings.db") as index:
        start = clock.now() - timedelta(days=40)
        for n in range(40):  # a 100 KB segment per day per camera, 40 days back
            for camera in (CAMERA, OTHER):
                relative = f"{camera[-4:]}/{n:03d}.mp4"
                write(root, relative, 100 * KB)
                when = start + timedelta(days=n)
                await index.add_segment(
                    camera, relative, when, end=when + timedelta(minutes=1), duration_s=60, bytes=100 * KB,
                    complete=True,
                )  # fmt: skip
        # The segment being written now: incomplete, never deleted.
        write(root, "open.mp4", 50 * KB)
        await index.add_segment(CAMERA, "open.mp4", start)
        # An incident 35 days ago on CAMERA, held by a technician.
        incident = start + timedelta(days=5)
        request = holds.HoldRequest(start=incident, end=incident + timedelta(seconds=30), reason="incident 17")
        assert await holds.place(index, CAMERA, request) == 1

        config = RetentionConfig(days=30, floor_bytes=4000 * KB, floor_percent=0, headroom_bytes=100 * KB)
        volume = FakeVolume(root, 10_000 * KB)  # 8050 KB used: 1950 KB free
        retention = Retention(config, root, index, clock=clock, usage=volume)
        await retention.enforce()

        left = await index.all_segments()
        assert files_under(root) == {s.path for s in left}
        assert any(s.held and s.start == incident for s in left)
        assert any(s.path == "open.mp4" for s in left)
        # Age: days 0-9 of both cameras but the held one. That leaves 3850 KB free: the floor (4000 KB + 100 KB
        # headroom) takes the three oldest of what is left, across cameras: day 10 of both, day 11 of CAMERA.
        assert retention.stats.deleted["age"] == 19
        assert retention.stats.deleted["floor"] == 3
        assert retention.stats.free_bytes == 4150 * KB
        kept = sorted((s.start, s.camera) for s in left if s.complete and not s.held)
        assert kept[0] == (start + timedelta(days=11), OTHER)
        assert len(kept) == 57
        assert retention.stats.recordings_bytes == await index.total_bytes()
        assert retention.stats.oldest_start == start  # the open segment's start
