"""An injectable clock, so schedules, windows, backoff and retention are testable without sleeping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall time for records, monotonic time for intervals, and a way to wait."""

    def now(self) -> datetime:
        """The current time, UTC, time-zone aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps, for measuring intervals."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for `seconds` of this clock's time (used for backoff and periodic work, never in tests)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to; `sleep` returns as soon as the clock is advanced past it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._wall = start or datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._changed = asyncio.Condition()

    def now(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    async def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
        async with self._changed:
            self._changed.notify_all()

    async def sleep(self, seconds: float) -> None:
        deadline = self._mono + seconds
        async with self._changed:
            await self._changed.wait_for(lambda: self._mono >= deadline)
