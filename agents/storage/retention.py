"""Retention: delete recordings by age per camera, and the oldest first to keep a free-space floor.

One `Retention` per recordings volume. The recorder calls `before_segment(camera)` before it opens each segment
(the floor is checked and space freed there, so a write does not fail for lack of space) and
`on_write_error(camera, exc)` when a write failed anyway (counted; on ENOSPC more is deleted and the recorder
retries after its backoff). `run()` is the periodic pass (age, then floor) in the agent's task group.

Held segments are never deleted: the index's `oldest()` leaves them out, and this module checks again. If only
held segments (or files that are not recordings) fill the volume, the floor cannot be held: `floor_breached`
stays set, `floor_unreachable_total` counts it, a warning is logged once per episode and the alert on the free
bytes fires; recording goes on until the disk is full, and then each failed write is counted and retried.

Deleting removes the file first, then the index row: a crash in between leaves a row without a file, which the
recorder's reconciliation at start drops (the other order would leave an orphan file that it re-indexes).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from agents.storage.config import RetentionConfig
from agents.storage.disk import DiskUsage, UsageSource, statvfs_usage
from common.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

DELETE_REASONS = ("age", "floor", "no_space")
"""Why a segment was deleted: its camera's retention ran out, the free-space floor, or a write failed (ENOSPC)."""
WRITE_ERRORS = ("no_space", "io", "other")
"""Kinds of write error the recorder reports (ENOSPC/EDQUOT, EIO, anything else)."""
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class SegmentRow(Protocol):
    """What retention reads from a segment of the index (agents.recording.index.Segment)."""

    @property
    def id(self) -> int: ...
    @property
    def camera(self) -> str: ...
    @property
    def path(self) -> str | os.PathLike[str]: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def bytes(self) -> int: ...
    @property
    def held(self) -> bool: ...


class SegmentStore(Protocol):
    """The part of the segment index (agents.recording.index.SegmentIndex) that retention uses."""

    async def oldest(
        self, limit: int, /, *, camera: str | None = None, older_than: datetime | None = None
    ) -> Sequence[SegmentRow]: ...
    async def delete(self, segment_id: int, /) -> object: ...
    async def total_bytes(self, camera: str | None = None, /) -> int: ...
    async def oldest_start(self, camera: str | None = None, /) -> datetime | None: ...
    async def cameras(self) -> Sequence[str]: ...


def write_error_kind(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return "no_space"
    if isinstance(exc, OSError) and exc.errno == errno.EIO:
        return "io"
    return "other"


@dataclass
class StorageStats:
    """The volume's figures as of the last measurement, and counters since the agent started."""

    total_bytes: int = 0
    free_bytes: int = 0
    floor_bytes: int = 0
    recordings_bytes: int = 0
    oldest_start: datetime | None = None
    floor_breached: bool = False
    deleted: Counter[str] = field(default_factory=Counter)
    """Segments deleted, by reason (DELETE_REASONS)."""
    deleted_bytes: Counter[str] = field(default_factory=Counter)
    write_errors: Counter[str] = field(default_factory=Counter)
    """Write errors the recorder reported, by kind (WRITE_ERRORS)."""
    floor_unreachable_total: int = 0
    """Times the floor could not be reached because nothing deletable was left (held segments, other files)."""
    delete_errors_total: int = 0
    check_errors_total: int = 0
    """Hook calls that failed themselves (volume or index unreadable); logged with the traceback."""
    passes_total: int = 0


class Retention:
    """Age and floor retention over one recordings root; see the module docstring."""

    def __init__(
        self,
        config: RetentionConfig,
        root: Path,
        index: SegmentStore,
        *,
        clock: Clock | None = None,
        usage: UsageSource = statvfs_usage,
    ) -> None:
        self.config = config
        self.root = root
        self._index = index
        self._clock: Clock = clock or SystemClock()
        self._usage = usage
        self._lock = asyncio.Lock()
        self._unreachable = False
        self.stats = StorageStats()
        self.passed = asyncio.Event()
        """Set after each periodic pass (tests wait on it)."""

    # ------------------------------------------------------------------------------------------------------------
    # The recorder's hooks

    async def before_segment(self, camera: str) -> None:
        """Called before a new segment is opened: make sure the floor holds, deleting the oldest if needed.
        Never raises (but for cancellation): a failing check must not stop the recording."""
        try:
            usage = await self.measure()
            if usage.free_bytes >= self.stats.floor_bytes:
                return
            async with self._lock:
                await self._hold_floor(reason="floor", minimum=0)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.check_errors_total += 1
            logger.exception("%s: cannot check or free the recordings volume before a segment", camera)

    async def on_write_error(self, camera: str, exc: BaseException) -> None:
        """A write failed: count it; on ENOSPC delete past the floor (at least a few segments) before the retry."""
        kind = write_error_kind(exc)
        self.stats.write_errors[kind] += 1
        if kind != "no_space":
            logger.error("%s: recording write failed (%s): %s", camera, kind, exc)
            return
        logger.warning("%s: the recordings volume is full (%s); deleting the oldest recordings", camera, exc)
        try:
            async with self._lock:
                await self._hold_floor(reason="no_space", minimum=self.config.enospc_delete_segments)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.check_errors_total += 1
            logger.exception("%s: cannot free the recordings volume after a failed write", camera)

    # ------------------------------------------------------------------------------------------------------------
    # Periodic work

    async def run(self) -> None:
        """A pass every `interval_s` until cancelled; a failing pass is logged and the loop goes on."""
        while True:
            try:
                await self.enforce()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("retention pass failed; next in %.0f s", self.config.interval_s)
            self.passed.set()
            await self._clock.sleep(self.config.interval_s)

    async def enforce(self) -> int:
        """One pass: age limits, then the floor; returns how many segments were deleted.

        The lock is taken one page of deletions at a time, so a recorder waiting in `before_segment` waits for
        at most one page, not for a whole pass (which can be long after the agent was off for weeks)."""
        deleted = await self._age_pass()
        async with self._lock:
            deleted += await self._hold_floor(reason="floor", minimum=0)
        self.stats.passes_total += 1
        await self.refresh()
        return deleted

    async def measure(self) -> DiskUsage:
        """Free and total bytes of the volume now (statvfs in a worker thread)."""
        usage = await asyncio.to_thread(self._usage, self.root)
        self.stats.total_bytes = usage.total_bytes
        self.stats.free_bytes = usage.free_bytes
        self.stats.floor_bytes = self.config.floor_for(usage.total_bytes)
        self.stats.floor_breached = usage.free_bytes < self.stats.floor_bytes
        return usage

    async def refresh(self) -> StorageStats:
        """Measure the volume and read the recordings' total size and oldest start from the index."""
        await self.measure()
        self.stats.recordings_bytes = await self._index.total_bytes()
        self.stats.oldest_start = await self._index.oldest_start()
        return self.stats

    def oldest_age_s(self) -> float | None:
        if self.stats.oldest_start is None:
            return None
        return max(0.0, (self._clock.now() - self.stats.oldest_start).total_seconds())

    # ------------------------------------------------------------------------------------------------------------

    async def _age_pass(self) -> int:
        """Every camera in the index (recorded now or not any more) against its own retention."""
        now = self._clock.now()
        deleted = 0
        for camera in await self._index.cameras():
            cutoff = now - timedelta(days=self.config.days_for(camera))
            deleted += await self._delete_older(cutoff, camera=camera)
        return deleted

    async def _delete_older(self, cutoff: datetime, *, camera: str) -> int:
        deleted = 0
        while True:
            async with self._lock:
                page = await self._index.oldest(self.config.batch, camera=camera, older_than=cutoff)
                due = [s for s in page if not s.held and s.end <= cutoff and s.camera == camera]
                progress = 0
                for segment in due:
                    progress += await self._delete(segment, "age")
            deleted += progress
            if not progress or len(page) < self.config.batch:
                return deleted

    async def _hold_floor(self, *, reason: str, minimum: int) -> int:
        """Delete the oldest segments until free >= floor + headroom and at least `minimum` are gone."""
        usage = await self.measure()
        floor = self.stats.floor_bytes
        target = floor + self.config.headroom_bytes if usage.free_bytes < floor or minimum else floor
        deleted = 0
        while usage.free_bytes < target or deleted < minimum:
            page = await self._index.oldest(self.config.batch)
            progress = 0
            need = target - usage.free_bytes
            for segment in page:
                if segment.held:
                    continue
                if await self._delete(segment, reason):
                    progress += 1
                    need -= max(segment.bytes, 1)
                if need <= 0 and deleted + progress >= minimum:
                    break
            deleted += progress
            usage = await self.measure()
            if not progress:
                break
        if usage.free_bytes < floor:
            self.stats.floor_unreachable_total += 1
            if not self._unreachable:
                self._unreachable = True
                logger.warning(
                    "the recordings volume has %d bytes free, under its floor of %d bytes, and nothing more can be "
                    "deleted (the rest is held or is not recordings)",
                    usage.free_bytes,
                    floor,
                )
        else:
            self._unreachable = False
        if deleted:
            logger.info("retention (%s): deleted %d segment(s); %d bytes free", reason, deleted, usage.free_bytes)
        return deleted

    async def _delete(self, segment: SegmentRow, reason: str) -> int:
        """Remove the file, then the row; 1 if the segment is gone, 0 if its file could not be removed."""
        try:
            inside = await asyncio.to_thread(_remove_file, self.root, segment.path)
        except OSError as exc:
            self.stats.delete_errors_total += 1
            logger.warning("%s: cannot delete segment %d: %s", segment.camera, segment.id, exc.strerror or exc)
            return 0
        if not inside:
            self.stats.delete_errors_total += 1
            logger.warning("%s: segment %d points outside the recordings root; row dropped", segment.camera, segment.id)
        await self._index.delete(segment.id)
        self.stats.deleted[reason] += 1
        self.stats.deleted_bytes[reason] += segment.bytes
        logger.debug("%s: segment %d deleted (%s)", segment.camera, segment.id, reason)
        return 1


def _remove_file(root: Path, relative: str | os.PathLike[str]) -> bool:
    """Unlink root/relative (gone already is fine); False, touching nothing, if it resolves outside the root."""
    base = root.resolve()
    path = base / relative
    if not path.resolve().is_relative_to(base) or path.resolve() == base:
        return False
    path.unlink(missing_ok=True)
    return True
