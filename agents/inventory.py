"""The agent's inventory of cameras, persisted in SQLite in the state directory, with a change feed.

Why SQLite (aiosqlite) rather than a JSON file: each pass updates only the cameras that changed, in one
transaction, without rewriting the rest, and the recorder (issue #4) adds its segment index to the same
database. Reports never hold a password (CameraReport refuses URLs with credentials; credentials live only in
the configuration).

`record(report)` merges a fresh observation with what is stored: first_seen is kept, changed_at moves only
when state or reason change, and a report is put on the change feed only when state, reason, profiles, device
information, snapshot URI or address differ from the stored one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType

import aiosqlite
from pydantic import ValidationError

from protocol.camera import CameraReport, CameraState

logger = logging.getLogger(__name__)

DB_FILE = "agent.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras (
    endpoint_ref TEXT PRIMARY KEY,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approved (
    endpoint_ref TEXT PRIMARY KEY,
    approved_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"""
MISSING_REASON = "did not answer the last discovery pass"
_COMPARED = ("state", "reason", "profiles", "device", "snapshot_uri", "address", "xaddrs", "name")
"""What makes a report a change worth publishing; last_seen and the clock offset's jitter are not."""


def is_change(old: CameraReport | None, new: CameraReport) -> bool:
    if old is None:
        return True
    return any(getattr(old, name) != getattr(new, name) for name in _COMPARED)


class Inventory:
    """Cameras by endpoint reference, the approved set, and a change feed. Open with `await Inventory.open()`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._cameras: dict[str, CameraReport] = {}
        self._approved: set[str] = set()
        self._listeners: list[Callable[[CameraReport], None]] = []
        self.changes: asyncio.Queue[CameraReport] = asyncio.Queue(maxsize=10_000)
        """Every change, for consumers that prefer a queue to a callback (oldest dropped when full)."""

    @classmethod
    async def open(cls, state_dir: Path) -> Inventory:
        await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(state_dir / DB_FILE)
        try:
            await db.executescript("PRAGMA journal_mode=WAL;" + _SCHEMA)
            await db.commit()
            inventory = cls(db)
            await inventory._load()
        except BaseException:
            await db.close()
            raise
        return inventory

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Inventory:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _load(self) -> None:
        async with self._db.execute("SELECT endpoint_ref, report FROM cameras") as cursor:
            async for ref, text in cursor:
                try:
                    self._cameras[str(ref)] = CameraReport.model_validate_json(text)
                except ValidationError:
                    logger.warning("inventory: dropping an unreadable stored report for %s", ref)
        async with self._db.execute("SELECT endpoint_ref FROM approved") as cursor:
            self._approved = {str(row[0]) async for row in cursor}

    def subscribe(self, listener: Callable[[CameraReport], None]) -> None:
        """Call `listener` with every change (synchronously, in the order they happen)."""
        self._listeners.append(listener)

    def snapshot(self) -> list[CameraReport]:
        """Every camera, sorted by endpoint reference."""
        return [self._cameras[ref] for ref in sorted(self._cameras)]

    def get(self, endpoint_ref: str) -> CameraReport | None:
        return self._cameras.get(endpoint_ref)

    @property
    def approved(self) -> frozenset[str]:
        return frozenset(self._approved)

    async def approve(self, endpoint_ref: str) -> bool:
        """Remember a technician's approval; False when it was approved already."""
        if endpoint_ref in self._approved:
            return False
        await self._db.execute("INSERT OR IGNORE INTO approved (endpoint_ref) VALUES (?)", (endpoint_ref,))
        await self._db.commit()
        self._approved.add(endpoint_ref)
        logger.info("inventory: camera %s approved", endpoint_ref)
        return True

    async def record(self, report: CameraReport) -> CameraReport:
        """Merge one observation; store it; emit it on the change feed if it changed. Returns the merged report."""
        merged = await self.record_many([report])
        return merged[0]

    async def record_many(self, reports: list[CameraReport]) -> list[CameraReport]:
        """Merge and store several observations in one transaction."""
        merged: list[CameraReport] = []
        changed: list[CameraReport] = []
        for report in reports:
            old = self._cameras.get(report.endpoint_ref)
            new = _merge(old, report)
            merged.append(new)
            if is_change(old, new):
                changed.append(new)
        await self._db.executemany(
            "INSERT INTO cameras (endpoint_ref, report) VALUES (?, ?) "
            "ON CONFLICT(endpoint_ref) DO UPDATE SET report = excluded.report",
            [(r.endpoint_ref, r.model_dump_json()) for r in merged],
        )
        await self._db.commit()
        for report in merged:
            self._cameras[report.endpoint_ref] = report
        for report in changed:
            self._emit(report)
        return merged

    async def mark_missing(self, seen: set[str], now: datetime) -> list[CameraReport]:
        """Cameras that did not answer this pass become unreachable (once; last_seen is kept)."""
        missing = [
            report.model_copy(update={"state": CameraState.UNREACHABLE, "reason": MISSING_REASON, "changed_at": now})
            for ref, report in self._cameras.items()
            if ref not in seen and report.reason != MISSING_REASON
        ]
        if not missing:
            return []
        await self._db.executemany(
            "UPDATE cameras SET report = ? WHERE endpoint_ref = ?",
            [(r.model_dump_json(), r.endpoint_ref) for r in missing],
        )
        await self._db.commit()
        for report in missing:
            self._cameras[report.endpoint_ref] = report
            self._emit(report)
        return missing

    def _emit(self, report: CameraReport) -> None:
        logger.info("camera %s at %s: %s (%s)", report.endpoint_ref, report.address, report.state, report.reason)
        if self.changes.full():
            self.changes.get_nowait()
        self.changes.put_nowait(report)
        for listener in self._listeners:
            try:
                listener(report)
            except Exception:
                logger.exception("inventory: a change listener failed")


def _merge(old: CameraReport | None, new: CameraReport) -> CameraReport:
    if old is None:
        return new
    state_changed = old.state != new.state or old.reason != new.reason
    return new.model_copy(
        update={
            "first_seen": min(old.first_seen, new.first_seen),
            "changed_at": new.last_seen if state_changed else old.changed_at,
        }
    )
