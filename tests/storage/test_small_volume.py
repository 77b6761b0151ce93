"""Retention on a real 8 MB volume (a tmpfs mounted for the test; needs root): the floor holds under a writer
that records three times the volume's size, and with no floor a full disk is survived through on_write_error."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agents.storage.config import RetentionConfig
from agents.storage.disk import statvfs_usage
from agents.storage.retention import Retention
from common.clock import ManualClock
from tests.storage.fakes import MemoryIndex, Row, files_under, tmpfs_volume

KB = 1024
MB = 1024 * KB
CAMERAS = ("0b6c9a4e-1111-4a6b-9a51-000000000001", "0b6c9a4e-2222-4a6b-9a51-000000000002")


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    with tmpfs_volume(tmp_path / "volume", "8m") as mount:
        yield mount


class Writer:
    """A stand-in for the recorder: segments of `size` bytes written in 64 KB chunks, hooks called as it will."""

    def __init__(self, root: Path, index: MemoryIndex, retention: Retention, clock: ManualClock) -> None:
        self.root = root
        self.index = index
        self.retention = retention
        self.clock = clock
        self.failed_writes = 0
        self.lowest_free_at_open = 1 << 62

    async def segment(self, camera: str, size: int) -> Row:
        await self.retention.before_segment(camera)
        self.lowest_free_at_open = min(self.lowest_free_at_open, statvfs_usage(self.root).free_bytes)
        (self.root / camera).mkdir(exist_ok=True)
        start = self.clock.now()
        relative = f"{camera}/{start:%Y%m%dT%H%M%S}.mp4"
        data = memoryview(os.urandom(size))
        with (self.root / relative).open("wb", buffering=0) as out:
            written = 0
            while written < size:
                try:
                    written += out.write(data[written : written + 64 * KB]) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    self.failed_writes += 1
                    await self.retention.on_write_error(camera, exc)
                    # and the recorder retries (after its backoff)
        await self.clock.advance(60)
        return self.index.register(camera, relative, start, self.clock.now(), size)


async def test_floor_holds_on_a_real_volume_while_writing_three_times_its_size(volume: Path) -> None:
    clock = ManualClock()
    index = MemoryIndex()
    config = RetentionConfig(floor_bytes=2 * MB, floor_percent=0, headroom_bytes=1 * MB)
    retention = Retention(config, volume, index, clock=clock)
    writer = Writer(volume, index, retention, clock)
    first = await writer.segment(CAMERAS[0], 512 * KB)
    await retention.refresh()
    assert retention.stats.total_bytes == 8 * MB
    # Camera 0's first segment is held: it survives everything below.
    await index.set_hold(first.camera, first.start, first.end, True)
    for n in range(48):  # 24 MB into an 8 MB volume
        await writer.segment(CAMERAS[n % 2], 512 * KB)

    assert writer.failed_writes == 0
    assert writer.lowest_free_at_open >= 2 * MB
    assert retention.stats.deleted["floor"] > 20
    assert (volume / first.path).exists() and first.id in index.rows
    # Oldest first: what is left is the newest footage (and the held segment).
    starts = sorted(r.start for r in index.rows.values() if not r.held)
    assert starts[-1] == clock.now() - timedelta(seconds=60)
    assert all(r.start >= starts[0] for r in index.rows.values() if not r.held)
    on_disk = files_under(volume)
    assert on_disk == {r.path for r in index.rows.values()}


async def test_a_full_volume_without_a_floor_is_survived_through_write_errors(volume: Path) -> None:
    clock = ManualClock()
    index = MemoryIndex()
    config = RetentionConfig(floor_percent=0, headroom_bytes=0, enospc_delete_segments=2)
    retention = Retention(config, volume, index, clock=clock)
    writer = Writer(volume, index, retention, clock)
    for n in range(40):  # 20 MB into 8 MB
        await writer.segment(CAMERAS[n % 2], 512 * KB)
    assert writer.failed_writes >= 1
    assert retention.stats.write_errors["no_space"] == writer.failed_writes
    assert retention.stats.deleted["no_space"] >= 2 * writer.failed_writes
    # Every segment the writer finished is complete on disk (the retried chunks went in).
    for row in index.rows.values():
        assert (volume / row.path).stat().st_size == 512 * KB
