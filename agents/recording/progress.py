"""The open segments' rows, brought up to date together: one index call per second for every camera.

While a segment is written its row follows the file (start as estimated now, end, duration, size), so that
listings show it growing and, after a crash, reconciliation starts from recent times. Each camera's session
`note`s its latest figures (no await); `run()` writes all of them once per `interval_s` in one transaction.
The index never lets such an update touch a finished row, so a late flush cannot undo a segment's close.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from agents.recording.index import Progress, SegmentIndex

logger = logging.getLogger(__name__)


class ProgressRows:
    """See the module docstring; `run()` until cancelled (it flushes what it holds on the way out)."""

    def __init__(self, index: SegmentIndex, interval_s: float = 1.0) -> None:
        self._index = index
        self._interval_s = interval_s
        self._pending: dict[int, Progress] = {}

    def note(self, row: int, start: datetime, end: datetime, duration_s: float, size: int) -> None:
        self._pending[row] = Progress(row, start, end, duration_s, size)

    def forget(self, row: int) -> None:
        """The row is being finished by its session: drop what was noted for it."""
        self._pending.pop(row, None)

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            await self._index.progress(list(pending.values()))

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval_s)  # a cadence, not a wait for something
                try:
                    await self.flush()
                except Exception:
                    logger.exception("cannot bring the open segments' rows up to date")
        finally:
            await asyncio.shield(self.flush())
