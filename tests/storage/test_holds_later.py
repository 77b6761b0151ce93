"""Holds are time ranges: segments recorded into a held range later are held as they are written, a segment that
grows into one is held, and releasing part of a range keeps the rest of it held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.recording.index import SegmentIndex
from agents.storage import holds

CAMERA = "5d6a2c1e-0f43-5b8e-9c55-3e0f3e7b9a10"
OTHER = "0b6c9a4e-2222-4a6b-9a51-000000000002"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


async def record(index: SegmentIndex, camera: str, n: int) -> int:
    """A one-minute segment as the recorder writes it: added at its start (no length), grown, then finished."""
    row = await index.add_segment(camera, f"{camera[:4]}/{n}.mp4", minute(n))
    await index.finish_segment(row.id, minute(n + 0.5), 30, 10, complete=False, start=minute(n))
    await index.finish_segment(row.id, minute(n + 1), 60, 20, complete=True, start=minute(n))
    return row.id


async def held_minutes(index: SegmentIndex, camera: str = CAMERA) -> list[int]:
    return [int((s.start - T0).total_seconds() // 60) for s in await index.all_segments(camera) if s.held]


async def test_segments_recorded_later_into_a_held_range_are_held(tmp_path: Path) -> None:
    async with await SegmentIndex.open(tmp_path / "recordings.db") as index:
        for n in range(3):
            await record(index, CAMERA, n)
        # An incident from 01:01:30 that is still going on: held until 01:06:00.
        request = holds.HoldRequest(start=minute(1.5), end=minute(6), reason="incident 31")
        assert await holds.place(index, CAMERA, request) == 2  # minutes 1 and 2 exist now
        for n in range(3, 9):
            await record(index, CAMERA, n)
            await record(index, OTHER, n)
        assert await held_minutes(index) == [1, 2, 3, 4, 5]
        assert await held_minutes(index, OTHER) == []  # another camera's hold ranges are its own

        # A segment whose first row starts before the range (at no length) and grows into it is held once it does.
        row = await index.add_segment(CAMERA, "grow.mp4", minute(20) - timedelta(seconds=30))
        await holds.place(index, CAMERA, holds.HoldRequest(start=minute(20), end=minute(21)))
        assert not (await index.get(row.id)).held  # type: ignore[union-attr]
        await index.finish_segment(row.id, minute(20.5), 60, 10, complete=False)
        assert (await index.get(row.id)).held  # type: ignore[union-attr]

        # Releasing the middle of the incident keeps both ends held.
        changed = await holds.release(index, CAMERA, holds.HoldRequest(start=minute(3), end=minute(4)))
        assert changed == 1
        assert await held_minutes(index) == [1, 2, 4, 5, 19]  # 19: the one that grew (from 01:19:30)
        assert await index.holds(CAMERA) == [(minute(1.5), minute(3)), (minute(4), minute(6)), (minute(20), minute(21))]
        # Retention's query never offers a held segment.
        oldest = await index.oldest(100, camera=CAMERA)
        assert sorted(int((s.start - T0).total_seconds() // 60) for s in oldest) == [0, 3, 6, 7, 8]
