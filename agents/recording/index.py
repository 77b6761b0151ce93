"""The segment index: every recorded segment and every gap, per camera, in SQLite.

Its own database file, `<state_dir>/recordings.db`, rather than tables in `agent.db`: the recorder writes a row
per segment per camera around the clock, and keeping that out of the inventory's database means neither waits
on the other's writes (one WAL each), and the index can be rebuilt from the disk (reconcile.py re-indexes orphan
files) without touching the inventory.

Times are stored as integer microseconds since the epoch (UTC), so ranges compare as numbers. A segment row is
added (incomplete) before its file is created and finished (complete) after the file is closed, so a crash
leaves at most one incomplete row per camera for reconciliation, never a file the index does not know about.

Holds are time ranges per camera (`holds`), and a segment's `held` flag follows them: set when a hold is placed
over it, and when a segment is added or grows into a held range later (a camera recorded on into an incident's
range), cleared only when no hold range overlaps it any more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

DB_FILE = "recordings.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    duration_s REAL NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS segments_camera_start ON segments (camera, start_us);
CREATE INDEX IF NOT EXISTS segments_age ON segments (complete, held, start_us);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gaps_camera_start ON gaps (camera, start_us);
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS holds_camera_start ON holds (camera, start_us);
"""
_HELD = (
    "EXISTS (SELECT 1 FROM holds h WHERE h.camera = segments.camera "
    "AND h.start_us < MAX(segments.end_us, segments.start_us + 1) AND h.end_us > segments.start_us)"
)
"""A segment is held while any hold range of its camera overlaps it (a segment of no length yet: its start)."""
_SEGMENT_COLUMNS = "id, camera, path, start_us, end_us, duration_s, bytes, complete, held"


@dataclass(frozen=True)
class Progress:
    """An open segment's row as of now (ProgressRows)."""

    row: int
    start: datetime
    end: datetime
    duration_s: float
    bytes: int


class IndexValueError(ValueError):
    """A value the index cannot store (naive datetime, end before start)."""


def to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise IndexValueError("the index needs time-zone aware datetimes")
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


@dataclass(frozen=True)
class Segment:
    """One segment file: `path` is relative to the recordings root; times are UTC."""

    id: int
    camera: str
    path: str
    start: datetime
    end: datetime
    duration_s: float
    bytes: int
    complete: bool
    held: bool


@dataclass(frozen=True)
class Gap:
    """A time without recording for a camera, and why (stall, drop, error, agent_down, ...)."""

    id: int
    camera: str
    start: datetime
    end: datetime
    reason: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _segment(row: Any) -> Segment:
    return Segment(
        id=int(row[0]),
        camera=str(row[1]),
        path=str(row[2]),
        start=from_us(int(row[3])),
        end=from_us(int(row[4])),
        duration_s=float(row[5]),
        bytes=int(row[6]),
        complete=bool(row[7]),
        held=bool(row[8]),
    )


def _gap(row: Any) -> Gap:
    return Gap(int(row[0]), str(row[1]), from_us(int(row[2])), from_us(int(row[3])), str(row[4]))


class SegmentIndex:
    """Segments and gaps; open with `await SegmentIndex.open(path)`, `await close()` when done."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SegmentIndex:
        """Open (creating) the index at `path` (a file; give `<state_dir>/recordings.db`)."""
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        try:
            await db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + _SCHEMA)
            await db.commit()
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> SegmentIndex:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _write(self, sql: str, params: tuple[Any, ...]) -> tuple[int, int]:
        """Run one statement in its own transaction; (lastrowid, rowcount)."""
        async with self._lock:
            cursor = await self._db.execute(sql, params)
            await self._db.commit()
            return int(cursor.lastrowid or 0), int(cursor.rowcount)

    async def _transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> int:
        """Several statements in one transaction; the last one's rowcount."""
        async with self._lock:
            count = 0
            try:
                for sql, params in statements:
                    cursor = await self._db.execute(sql, params)
                    count = int(cursor.rowcount)
            except BaseException:
                await self._db.rollback()
                raise
            await self._db.commit()
            return count

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # ------------------------------------------------------------------------------------------------------------
    # Segments

    async def add_segment(
        self,
        camera: str,
        path: str,
        start: datetime,
        *,
        end: datetime | None = None,
        duration_s: float = 0.0,
        bytes: int = 0,
        complete: bool = False,
    ) -> Segment:
        """A new segment row (incomplete unless told otherwise)."""
        start_us = to_us(start)
        end_us = start_us if end is None else to_us(end)
        if end_us < start_us:
            raise IndexValueError("a segment cannot end before it starts")
        row_id, _ = await self._write(
            "INSERT INTO segments (camera, path, start_us, end_us, duration_s, bytes, complete, held) "
            "SELECT ?, ?, ?, ?, ?, ?, ?, EXISTS (SELECT 1 FROM holds h WHERE h.camera = ? "
            "AND h.start_us < MAX(?, ? + 1) AND h.end_us > ?)",
            (
                camera,
                path,
                start_us,
                end_us,
                float(duration_s),
                int(bytes),
                int(complete),
                camera,
                end_us,
                start_us,
                start_us,
            ),
        )
        held = bool((await self._rows("SELECT held FROM segments WHERE id = ?", (row_id,)))[0][0])
        return Segment(
            row_id, camera, path, from_us(start_us), from_us(end_us), float(duration_s), bytes, complete, held
        )

    async def finish_segment(
        self,
        segment_id: int,
        end: datetime,
        duration_s: float,
        bytes: int,
        *,
        complete: bool = True,
        start: datetime | None = None,
    ) -> bool:
        """Record a segment's end, media duration and size (complete: its file is closed), and its start if it
        was refined. False if there is no such segment."""
        if start is None:
            count = await self._transaction(
                [
                    (
                        "UPDATE segments SET end_us = MAX(start_us, ?), duration_s = ?, bytes = ?, complete = ? "
                        "WHERE id = ?",
                        (to_us(end), float(duration_s), int(bytes), int(complete), segment_id),
                    ),
                    (f"UPDATE segments SET held = MAX(held, {_HELD}) WHERE id = ?", (segment_id,)),  # noqa: S608
                ]
            )
        else:
            start_us, end_us = to_us(start), to_us(end)
            if end_us < start_us:
                raise IndexValueError("a segment cannot end before it starts")
            count = await self._transaction(
                [
                    (
                        "UPDATE segments SET start_us = ?, end_us = ?, duration_s = ?, bytes = ?, complete = ? "
                        "WHERE id = ?",
                        (start_us, end_us, float(duration_s), int(bytes), int(complete), segment_id),
                    ),
                    (f"UPDATE segments SET held = MAX(held, {_HELD}) WHERE id = ?", (segment_id,)),  # noqa: S608
                ]
            )
        return count > 0

    async def progress(self, rows: list[Progress]) -> None:
        """Bring open segments' rows up to date in one transaction; finished rows are left alone."""
        values = [
            (to_us(p.start), max(to_us(p.start), to_us(p.end)), float(p.duration_s), int(p.bytes), p.row) for p in rows
        ]
        async with self._lock:
            try:
                await self._db.executemany(
                    "UPDATE segments SET start_us = ?, end_us = ?, duration_s = ?, bytes = ? "
                    "WHERE id = ? AND complete = 0",
                    values,
                )
                await self._db.executemany(
                    f"UPDATE segments SET held = MAX(held, {_HELD}) WHERE id = ?",  # noqa: S608
                    [(p.row,) for p in rows],
                )
            except BaseException:
                await self._db.rollback()
                raise
            await self._db.commit()

    async def get(self, segment_id: int) -> Segment | None:
        rows = await self._rows(f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE id = ?", (segment_id,))  # noqa: S608
        return _segment(rows[0]) if rows else None

    async def segments(self, camera: str, start: datetime, end: datetime) -> list[Segment]:
        """The camera's segments that overlap [start, end), by start time."""
        return [
            _segment(row)
            for row in await self._rows(
                f"SELECT {_SEGMENT_COLUMNS} FROM segments "  # noqa: S608
                "WHERE camera = ? AND start_us < ? AND end_us > ? ORDER BY start_us, id",
                (camera, to_us(end), to_us(start)),
            )
        ]

    async def all_segments(self, camera: str | None = None) -> list[Segment]:
        """Every segment (of one camera, or all), by camera and start time."""
        params: tuple[str, ...] = ()
        if camera is None:
            sql = f"SELECT {_SEGMENT_COLUMNS} FROM segments ORDER BY camera, start_us, id"  # noqa: S608
        else:
            sql = f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE camera = ? ORDER BY start_us, id"  # noqa: S608
            params = (camera,)
        return [_segment(row) for row in await self._rows(sql, params)]

    async def oldest(
        self, limit: int, *, camera: str | None = None, older_than: datetime | None = None
    ) -> list[Segment]:
        """Up to `limit` complete segments not on hold, oldest first (ending at or before `older_than` if given)."""
        sql = f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE complete = 1 AND held = 0"  # noqa: S608
        params: list[Any] = []
        if camera is not None:
            sql += " AND camera = ?"
            params.append(camera)
        if older_than is not None:
            sql += " AND end_us <= ?"
            params.append(to_us(older_than))
        sql += " ORDER BY start_us, id LIMIT ?"
        params.append(max(0, int(limit)))
        return [_segment(row) for row in await self._rows(sql, tuple(params))]

    async def delete(self, segment_id: int) -> bool:
        """Remove the row only (the caller removes the file, first). False if there was none."""
        _, count = await self._write("DELETE FROM segments WHERE id = ?", (segment_id,))
        return count > 0

    async def set_hold(self, camera: str, start: datetime, end: datetime, held: bool) -> int:
        """Hold [start, end) of the camera (its segments there now, and those recorded into it later), or release
        it (what remains held is what other hold ranges still cover); how many segment rows changed."""
        start_us, end_us = to_us(start), to_us(end)
        if end_us <= start_us:
            raise IndexValueError("a hold must end after it starts")
        statements: list[tuple[str, tuple[Any, ...]]] = []
        if held:
            statements.append(
                ("INSERT INTO holds (camera, start_us, end_us) VALUES (?, ?, ?)", (camera, start_us, end_us))
            )
        else:
            # Cut [start, end) out of every overlapping range: keep its parts before and after (those no longer
            # overlap the range, so the later statements leave them alone).
            overlap = "camera = ? AND start_us < ? AND end_us > ?"
            where = (camera, end_us, start_us)
            statements += [
                (
                    f"INSERT INTO holds (camera, start_us, end_us) SELECT camera, start_us, ? FROM holds WHERE {overlap} AND start_us < ?",  # noqa: S608, E501
                    (start_us, *where, start_us),
                ),
                (
                    f"INSERT INTO holds (camera, start_us, end_us) SELECT camera, ?, end_us FROM holds WHERE {overlap} AND end_us > ?",  # noqa: S608, E501
                    (end_us, *where, end_us),
                ),
                (f"DELETE FROM holds WHERE {overlap}", where),  # noqa: S608
            ]
        statements.append(
            (
                f"UPDATE segments SET held = {_HELD} WHERE camera = ? AND start_us < ? "  # noqa: S608
                f"AND MAX(end_us, start_us + 1) > ? AND held != {_HELD}",
                (camera, end_us, start_us),
            )
        )
        return await self._transaction(statements)

    async def holds(self, camera: str) -> list[tuple[datetime, datetime]]:
        """The camera's hold ranges, by start."""
        rows = await self._rows("SELECT start_us, end_us FROM holds WHERE camera = ? ORDER BY start_us, id", (camera,))
        return [(from_us(int(a)), from_us(int(b))) for a, b in rows]

    async def total_bytes(self, camera: str | None = None) -> int:
        if camera is None:
            rows = await self._rows("SELECT COALESCE(SUM(bytes), 0) FROM segments", ())
        else:
            rows = await self._rows("SELECT COALESCE(SUM(bytes), 0) FROM segments WHERE camera = ?", (camera,))
        return int(rows[0][0])

    async def oldest_start(self, camera: str | None = None) -> datetime | None:
        if camera is None:
            rows = await self._rows("SELECT MIN(start_us) FROM segments", ())
        else:
            rows = await self._rows("SELECT MIN(start_us) FROM segments WHERE camera = ?", (camera,))
        return None if rows[0][0] is None else from_us(int(rows[0][0]))

    async def latest_end(self, camera: str) -> datetime | None:
        """The end of the camera's last recorded media (segments or gaps), so new recording starts after it."""
        rows = await self._rows(
            "SELECT MAX(e) FROM (SELECT MAX(end_us) AS e FROM segments WHERE camera = ? "
            "UNION ALL SELECT MAX(end_us) FROM gaps WHERE camera = ?)",
            (camera, camera),
        )
        return None if rows[0][0] is None else from_us(int(rows[0][0]))

    async def cameras(self) -> list[str]:
        rows = await self._rows("SELECT DISTINCT camera FROM segments ORDER BY camera", ())
        return [str(row[0]) for row in rows]

    # ------------------------------------------------------------------------------------------------------------
    # Gaps

    async def add_gap(self, camera: str, start: datetime, end: datetime, reason: str) -> Gap:
        start_us, end_us = to_us(start), to_us(end)
        if end_us < start_us:
            raise IndexValueError("a gap cannot end before it starts")
        row_id, _ = await self._write(
            "INSERT INTO gaps (camera, start_us, end_us, reason) VALUES (?, ?, ?, ?)",
            (camera, start_us, end_us, reason),
        )
        return Gap(row_id, camera, from_us(start_us), from_us(end_us), reason)

    async def gaps(self, camera: str, start: datetime, end: datetime) -> list[Gap]:
        """The camera's gaps that overlap [start, end), by start time."""
        rows = await self._rows(
            "SELECT id, camera, start_us, end_us, reason FROM gaps "
            "WHERE camera = ? AND start_us < ? AND end_us > ? ORDER BY start_us, id",
            (camera, to_us(end), to_us(start)),
        )
        return [_gap(row) for row in rows]
