"""An in-memory segment index with the SegmentIndex surface retention uses, a free-space source over files, and a
real small volume (tmpfs) for the tests that fill a disk."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agents.storage.disk import DiskUsage


@dataclass(frozen=True)
class Row:
    id: int
    camera: str
    path: str
    start: datetime
    end: datetime
    bytes: int
    complete: bool = True
    held: bool = False

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


class MemoryIndex:
    """Segments in a dict; `oldest` leaves out held and incomplete ones, oldest first (as the real index)."""

    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self.deleted: list[int] = []
        self.removed: list[Row] = []
        self._next = 1

    def add(self, root: Path, camera: str, start: datetime, size: int, *, seconds: float = 60.0) -> Row:
        relative = f"{camera}/{start:%Y%m%dT%H%M%S}.mp4"
        (root / camera).mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"\0" * size)
        return self.register(camera, relative, start, start + timedelta(seconds=seconds), size)

    def register(self, camera: str, path: str, start: datetime, end: datetime, size: int, *, held: bool = False) -> Row:
        row = Row(self._next, camera, path, start, end, size, held=held)
        self.rows[row.id] = row
        self._next += 1
        return row

    async def oldest(self, limit: int, *, camera: str | None = None, older_than: datetime | None = None) -> list[Row]:
        rows = [
            r
            for r in self.rows.values()
            if r.complete
            and not r.held
            and (camera is None or r.camera == camera)
            and (older_than is None or r.end <= older_than)
        ]
        return sorted(rows, key=lambda r: (r.start, r.id))[:limit]

    async def delete(self, segment_id: int) -> bool:
        self.deleted.append(segment_id)
        row = self.rows.pop(segment_id, None)
        if row is not None:
            self.removed.append(row)
        return row is not None

    async def total_bytes(self, camera: str | None = None) -> int:
        return sum(r.bytes for r in self.rows.values() if camera is None or r.camera == camera)

    async def oldest_start(self, camera: str | None = None) -> datetime | None:
        starts = [r.start for r in self.rows.values() if camera is None or r.camera == camera]
        return min(starts, default=None)

    async def cameras(self) -> list[str]:
        return sorted({r.camera for r in self.rows.values()})

    async def set_hold(self, camera: str, start: datetime, end: datetime, held: bool) -> int:
        hits = [r for r in self.rows.values() if r.camera == camera and r.start < end and r.end > start]
        for r in hits:
            self.rows[r.id] = replace(r, held=held)
        return len(hits)

    async def holds(self, camera: str) -> list[tuple[datetime, datetime]]:
        """Not kept here (the real index keeps ranges: test_holds_later.py); the flags above are what tests read."""
        return []


class FakeVolume:
    """A volume of `total` bytes whose free space is what the files under `root` (and `other`) leave."""

    def __init__(self, root: Path, total: int, *, other: int = 0) -> None:
        self.root = root
        self.total = total
        self.other = other
        self.calls = 0

    def used(self) -> int:
        return self.other + sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def __call__(self, path: Path) -> DiskUsage:
        assert path == self.root
        self.calls += 1
        return DiskUsage(total_bytes=self.total, free_bytes=max(0, self.total - self.used()))


def files_under(root: Path) -> set[str]:
    """The segment files under root, relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*.mp4")}


@contextlib.contextmanager
def tmpfs_volume(where: Path, size: str) -> Iterator[Path]:
    """A real, small filesystem (a tmpfs of `size`, e.g. "2m") mounted at `where`; skips the test without root."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "ketnoi-test", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
