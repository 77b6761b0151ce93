"""Retention by age per camera, the free-space floor, ENOSPC, holds and the periodic loop (no sleeping)."""

from __future__ import annotations

import asyncio
import errno
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.storage import holds
from agents.storage.config import RetentionConfig
from agents.storage.disk import DiskUsage
from agents.storage.retention import Retention
from common.clock import ManualClock
from tests.storage.fakes import FakeVolume, MemoryIndex, files_under
from tests.waiting import eventually

KB = 1024
CAM_A = "0b6c9a4e-1111-4a6b-9a51-000000000001"
CAM_B = "0b6c9a4e-2222-4a6b-9a51-000000000002"


def cfg(**values: object) -> RetentionConfig:
    base: dict[str, object] = {"floor_percent": 0, "headroom_bytes": 0, "days": 30}
    base.update(values)
    return RetentionConfig.model_validate(base)


def breached(retention: Retention) -> bool:
    return retention.stats.floor_breached


async def test_age_retention_per_camera_with_overrides(tmp_path: Path) -> None:
    clock = ManualClock()
    index = MemoryIndex()
    now = clock.now()
    # Camera A: default 30 days. Camera B: 7 days. A segment per day, 40 days back.
    for day in range(40, 0, -1):
        index.add(tmp_path, CAM_A, now - timedelta(days=day), 10)
        index.add(tmp_path, CAM_B, now - timedelta(days=day), 10)
    volume = FakeVolume(tmp_path, 10**9)
    retention = Retention(cfg(camera_days={f"urn:uuid:{CAM_B}": 7}), tmp_path, index, clock=clock, usage=volume)
    deleted = await retention.enforce()

    left_a = sorted(r.start for r in index.rows.values() if r.camera == CAM_A)
    left_b = sorted(r.start for r in index.rows.values() if r.camera == CAM_B)
    # A segment goes once its end (start + 60 s) is older than the cutoff.
    assert left_a[0] == now - timedelta(days=30) and len(left_a) == 30
    assert left_b[0] == now - timedelta(days=7) and len(left_b) == 7
    assert deleted == 10 + 33
    assert retention.stats.deleted["age"] == 43
    # The files went with the rows, and nothing else.
    files = files_under(tmp_path)
    assert files == {r.path for r in index.rows.values()}
    assert retention.stats.recordings_bytes == 37 * 10
    assert retention.oldest_age_s() == pytest.approx(30 * 86400)


async def test_every_camera_in_the_index_gets_its_own_retention_by_id_or_endpoint_ref(tmp_path: Path) -> None:
    clock = ManualClock()
    index = MemoryIndex()
    now = clock.now()
    gone, kept = "urn:uuid:0b6c9a4e-3333-4a6b-9a51-000000000003", f"urn:uuid:{CAM_B}"
    for day in (100, 60, 40, 10):
        index.add(tmp_path, gone, now - timedelta(days=day), 10)
        index.add(tmp_path, kept, now - timedelta(days=day), 10)
    volume = FakeVolume(tmp_path, 10**9)
    retention = Retention(cfg(camera_days={CAM_B: 50}), tmp_path, index, clock=clock, usage=volume)
    await retention.enforce()
    # A camera no longer recorded keeps the default (30 days); the override (50 days) applies by id or by ref.
    assert sorted((now - r.start).days for r in index.rows.values() if r.camera == gone) == [10]
    assert sorted((now - r.start).days for r in index.rows.values() if r.camera == kept) == [10, 40]


async def test_floor_deletes_oldest_first_before_a_segment_and_keeps_held(tmp_path: Path) -> None:
    clock = ManualClock()
    index = MemoryIndex()
    start = clock.now() - timedelta(hours=2)
    for minute in range(20):  # 20 x 50 KB, alternating cameras, 1 minute apart
        index.add(tmp_path, CAM_A if minute % 2 else CAM_B, start + timedelta(minutes=minute), 50 * KB)
    # A technician holds camera B's first 10 minutes (its segments at minutes 0, 2, 4, 6, 8).
    request = holds.HoldRequest(start=start, end=start + timedelta(minutes=9, seconds=30))
    assert await holds.place(index, CAM_B, request) == 5
    volume = FakeVolume(tmp_path, 1200 * KB)  # 1000 KB used: 200 KB free
    retention = Retention(
        cfg(floor_bytes=300 * KB, headroom_bytes=100 * KB), tmp_path, index, clock=clock, usage=volume
    )
    await retention.before_segment(CAM_A)

    # 200 KB more were needed (floor + headroom = 400 KB): the four oldest segments that are not held.
    deleted_minutes = sorted(int((r.start - start).total_seconds() // 60) for r in index.removed)
    assert deleted_minutes == [1, 3, 5, 7]
    assert volume(tmp_path).free_bytes == 400 * KB
    assert retention.stats.deleted["floor"] == 4
    assert not retention.stats.floor_breached
    # Nothing to do while the floor holds.
    calls = len(index.deleted)
    await retention.before_segment(CAM_A)
    assert len(index.deleted) == calls


async def test_floor_cannot_be_held_when_only_held_segments_are_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    index = MemoryIndex()
    start = clock.now() - timedelta(hours=1)
    for minute in range(10):
        index.add(tmp_path, CAM_A, start + timedelta(minutes=minute), 100 * KB)
    await holds.place(index, CAM_A, holds.HoldRequest(start=start, end=start + timedelta(minutes=5, seconds=30)))
    volume = FakeVolume(tmp_path, 1100 * KB)  # 100 KB free
    retention = Retention(cfg(floor_bytes=900 * KB), tmp_path, index, clock=clock, usage=volume)
    with caplog.at_level(logging.WARNING, logger="agents.storage.retention"):
        await retention.before_segment(CAM_A)
        await retention.before_segment(CAM_A)
    # The four unheld segments went; the six held ones stayed, although the floor is still breached.
    assert len(index.rows) == 6 and all(r.held for r in index.rows.values())
    assert all((tmp_path / r.path).exists() for r in index.rows.values())
    assert breached(retention)
    assert retention.stats.free_bytes == 500 * KB
    assert retention.stats.floor_unreachable_total == 2
    # Said once per episode, not at every segment.
    assert sum("under its floor" in r.getMessage() for r in caplog.records) == 1

    # Releasing the hold lets the next check reach the floor again.
    await holds.release(index, CAM_A, holds.HoldRequest(start=start, end=start + timedelta(hours=1)))
    await retention.before_segment(CAM_A)
    assert not breached(retention)
    assert retention.stats.free_bytes >= 900 * KB


async def test_enospc_deletes_more_and_is_counted_other_errors_only_counted(tmp_path: Path) -> None:
    clock = ManualClock()
    index = MemoryIndex()
    for minute in range(10):
        index.add(tmp_path, CAM_A, clock.now() + timedelta(minutes=minute), 10 * KB)
    # The volume reports plenty free (a quota, or reserved blocks): ENOSPC still frees a few segments.
    retention = Retention(
        cfg(enospc_delete_segments=3), tmp_path, index, clock=clock, usage=FakeVolume(tmp_path, 10**9)
    )
    await retention.on_write_error(CAM_A, OSError(errno.ENOSPC, "No space left on device"))
    assert len(index.rows) == 7
    assert retention.stats.deleted["no_space"] == 3
    await retention.on_write_error(CAM_A, OSError(errno.EIO, "Input/output error"))
    await retention.on_write_error(CAM_A, ValueError("muxer refused"))
    assert len(index.rows) == 7
    assert dict(retention.stats.write_errors) == {"no_space": 1, "io": 1, "other": 1}


async def test_a_row_pointing_outside_the_root_never_touches_that_file(tmp_path: Path) -> None:
    clock = ManualClock()
    root = tmp_path / "recordings"
    root.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    index = MemoryIndex()
    row = index.add(root, CAM_A, clock.now() - timedelta(days=90), 10)
    index.rows[row.id] = type(row)(row.id, CAM_A, "../precious.txt", row.start, row.end, 10)
    (root / "link.mp4").symlink_to(outside)
    link = index.add(root, CAM_A, clock.now() - timedelta(days=89), 10)
    (root / link.path).unlink()
    index.rows[link.id] = type(link)(link.id, CAM_A, "link.mp4", link.start, link.end, 10)
    retention = Retention(cfg(), root, index, clock=clock, usage=FakeVolume(root, 10**9))
    await retention.enforce()
    assert outside.read_text() == "keep me"
    assert index.rows == {}
    assert retention.stats.delete_errors_total == 2


async def test_periodic_loop_runs_on_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    index = MemoryIndex()
    index.add(tmp_path, CAM_A, clock.now() - timedelta(days=1), 10)
    retention = Retention(cfg(days=2, interval_s=3600), tmp_path, index, clock=clock, usage=FakeVolume(tmp_path, 10**9))
    task = asyncio.create_task(retention.run())
    try:
        await eventually(lambda: retention.stats.passes_total == 1)
        assert len(index.rows) == 1
        await clock.advance(86400 + 120)  # a day later the segment has ended 2 days ago; a pass is due
        await eventually(lambda: retention.stats.passes_total >= 2)
        assert index.rows == {}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_configuration_is_validated() -> None:
    with pytest.raises(ValidationError, match="camera_days"):
        RetentionConfig.model_validate({"camera_days": {CAM_A: 0}})
    with pytest.raises(ValidationError):
        RetentionConfig.model_validate({"floor_percent": 100})
    with pytest.raises(ValidationError):
        RetentionConfig.model_validate({"retention_days": 3})
    override = RetentionConfig.model_validate({"camera_days": {f"urn:uuid:{CAM_A.upper()}": 3}})
    assert override.days_for(CAM_A) == 3 and override.days_for(f"urn:uuid:{CAM_A}") == 3
    assert override.days_for(CAM_B) == 30 and override.days_for(f"{CAM_A}.sub") == 3
    config = RetentionConfig(floor_bytes=10, floor_percent=10)
    assert config.floor_for(1000) == 100 and config.floor_for(50) == 10


def test_hold_requests_are_validated() -> None:
    with pytest.raises(ValidationError, match="end must be after start"):
        holds.HoldRequest.model_validate({"start": "2026-01-05T02:00:00Z", "end": "2026-01-05T01:00:00Z"})
    with pytest.raises(ValidationError, match="timezone"):
        holds.HoldRequest.model_validate({"start": "2026-01-05T01:00:00", "end": "2026-01-05T02:00:00"})
    with pytest.raises(ValidationError, match="at most"):
        holds.HoldRequest.model_validate({"start": "2020-01-05T01:00:00Z", "end": "2026-01-05T02:00:00Z"})


async def test_the_hooks_never_raise_into_the_recorder(tmp_path: Path) -> None:
    def broken(path: Path) -> DiskUsage:
        raise OSError(errno.EIO, "statvfs failed")

    retention = Retention(cfg(), tmp_path, MemoryIndex(), clock=ManualClock(), usage=broken)
    await retention.before_segment(CAM_A)
    await retention.on_write_error(CAM_A, OSError(errno.ENOSPC, "No space left on device"))
    assert retention.stats.check_errors_total == 2
    assert retention.stats.write_errors["no_space"] == 1
