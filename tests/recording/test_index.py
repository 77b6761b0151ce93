"""The segment index: rows, ranges, holds, the oldest-first listing retention uses, and validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agents.recording.index import IndexValueError, SegmentIndex, from_us, to_us

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SegmentIndex]:
    opened = await SegmentIndex.open(tmp_path / "recordings.db")
    try:
        yield opened
    finally:
        await opened.close()


async def add(index: SegmentIndex, camera: str, minute: int, *, complete: bool = True) -> int:
    start = T0 + timedelta(minutes=minute)
    segment = await index.add_segment(camera, f"{camera}/{minute}.mp4", start)
    if complete:
        await index.finish_segment(segment.id, start + timedelta(seconds=60), 60.0, 1000 + minute)
    return segment.id


def test_microseconds_round_trip() -> None:
    when = datetime(2026, 3, 1, 8, 0, 1, 234567, tzinfo=timezone(timedelta(hours=7)))
    assert from_us(to_us(when)) == when
    assert from_us(to_us(when)).tzinfo == UTC
    with pytest.raises(IndexValueError):
        to_us(datetime(2026, 3, 1))  # naive on purpose


async def test_add_finish_get(index: SegmentIndex) -> None:
    segment = await index.add_segment("cam", "cam/a.mp4", T0)
    assert segment.complete is False and segment.end == T0 and segment.bytes == 0
    assert await index.finish_segment(segment.id, T0 + timedelta(seconds=3), 2.96, 12345)
    stored = await index.get(segment.id)
    assert stored is not None
    assert (stored.end, stored.duration_s, stored.bytes, stored.complete, stored.held) == (
        T0 + timedelta(seconds=3),
        2.96,
        12345,
        True,
        False,
    )
    assert await index.get(segment.id + 100) is None
    assert not await index.finish_segment(segment.id + 100, T0, 0, 0)
    with pytest.raises(IndexValueError):
        await index.add_segment("cam", "cam/b.mp4", T0, end=T0 - timedelta(seconds=1))


async def test_ranges_overlap(index: SegmentIndex) -> None:
    for minute in range(5):
        await add(index, "cam", minute)
    await add(index, "other", 2)
    found = await index.segments("cam", T0 + timedelta(minutes=1, seconds=30), T0 + timedelta(minutes=3))
    assert [s.path for s in found] == ["cam/1.mp4", "cam/2.mp4"]
    assert await index.segments("cam", T0 + timedelta(minutes=10), T0 + timedelta(minutes=11)) == []
    gap = await index.add_gap("cam", T0 + timedelta(minutes=5), T0 + timedelta(minutes=5, seconds=7), "stall")
    assert gap.seconds == 7
    assert await index.gaps("cam", T0, T0 + timedelta(hours=1)) == [gap]
    assert await index.gaps("other", T0, T0 + timedelta(hours=1)) == []
    assert await index.latest_end("cam") == T0 + timedelta(minutes=5, seconds=7)
    assert await index.latest_end("nobody") is None


async def test_oldest_skips_held_and_incomplete(index: SegmentIndex) -> None:
    ids = [await add(index, "cam", minute) for minute in range(4)]
    open_id = await add(index, "cam", 4, complete=False)
    other = await add(index, "other", 0)
    held = await index.set_hold("cam", T0 + timedelta(seconds=30), T0 + timedelta(minutes=1, seconds=30), True)
    assert held == 2  # the first two segments overlap the range
    oldest = await index.oldest(10)
    assert [s.id for s in oldest] == [other, ids[2], ids[3]]
    assert open_id not in [s.id for s in oldest]
    assert [s.id for s in await index.oldest(10, camera="cam")] == ids[2:]
    assert [s.id for s in await index.oldest(1, camera="cam")] == ids[2:3]
    cutoff = T0 + timedelta(minutes=3)
    assert [s.id for s in await index.oldest(10, camera="cam", older_than=cutoff)] == [ids[2]]
    assert await index.set_hold("cam", T0, T0 + timedelta(hours=1), False) == 2
    assert [s.id for s in await index.oldest(10, camera="cam")] == ids


async def test_totals_and_delete(index: SegmentIndex) -> None:
    assert await index.total_bytes() == 0
    assert await index.oldest_start() is None
    first = await add(index, "cam", 0)
    await add(index, "cam", 1)
    await add(index, "other", 5)
    assert await index.total_bytes() == 1000 + 1001 + 1005
    assert await index.total_bytes("cam") == 2001
    assert await index.oldest_start() == T0
    assert await index.oldest_start("other") == T0 + timedelta(minutes=5)
    assert await index.cameras() == ["cam", "other"]
    assert await index.delete(first)
    assert not await index.delete(first)
    assert await index.get(first) is None
    assert await index.oldest_start("cam") == T0 + timedelta(minutes=1)


async def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "recordings.db"
    async with await SegmentIndex.open(path) as index:
        segment = await index.add_segment("cam", "cam/a.mp4", T0)
    async with await SegmentIndex.open(path) as index:
        assert await index.get(segment.id) == segment
        assert [s.id for s in await index.all_segments("cam")] == [segment.id]
