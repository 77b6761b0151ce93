"""The revocation watcher: re-checks every open live view each `INTERVAL_S` of the injected clock, and at once
after any state-changing request that succeeded (a guardianship revoked, a child moved, a consent withdrawn, a
camera reassigned, a window changed, a user disabled: whatever the route, the next pass sees it). Views no
longer allowed are ended and closed at their node within seconds.

Owned by the app: started on startup (after the database is migrated), cancelled and awaited on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from common.clock import Clock
from controller import state
from controller.live.service import LiveService
from controller.security.access import SAFE_METHODS

logger = logging.getLogger(__name__)

INTERVAL_S = 1.0
FAIL_CLOSED_S = 4.0
"""Passes failing for this long close every view known to be open (revocation must not wait on a database)."""
STOP_TIMEOUT_S = 10.0


class Watcher:
    def __init__(self, service: LiveService, clock: Clock, interval_s: float = INTERVAL_S) -> None:
        self._service = service
        self._clock = clock
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_ok = clock.monotonic()
        self.passes = 0

    def wake(self) -> None:
        """Run a pass now (a change that may take a right away was just committed)."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the pass under way (a pass cancelled halfway would leave a database connection mid-query)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._service.recheck()
                self._last_ok = self._clock.monotonic()
            except (SQLAlchemyError, OSError) as exc:
                logger.exception("live view watcher: the pass failed (%s); trying again", exc)
                if self._clock.monotonic() - self._last_ok >= FAIL_CLOSED_S:
                    await self._service.fail_closed()
            self.passes += 1
            if self._stopping:
                return
            sleeper = asyncio.ensure_future(self._clock.sleep(self._interval_s))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleeper, waker):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


LIVE: web.AppKey[LiveService] = web.AppKey("live", LiveService)
WATCHER: web.AppKey[Watcher] = web.AppKey("live_watcher", Watcher)


_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("live_watcher_task", asyncio.Task)


async def start_watcher(app: web.Application) -> None:
    """on_startup, after the cleanup contexts (the database is migrated by then)."""
    app[_TASK] = asyncio.create_task(app[WATCHER].run(), name="live-watcher")


async def stop_watcher(app: web.Application) -> None:
    """on_shutdown, before the cleanup contexts close the database and the control client."""
    task = app.get(_TASK)
    if task is None:
        return
    app[WATCHER].stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wake_after_changes(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: a successful state-changing request wakes the watcher (its transaction is over),
    unless its route's policy says its changes take no right away (bookings: at 200 creates a second the
    watcher would re-read every open view after each one, for nothing)."""
    if request.method not in SAFE_METHODS and response.status < 400:
        policy = request.app[state.POLICIES].get(request.match_info.route)
        if policy is not None and not policy.may_revoke:
            return
        watcher = request.app.get(WATCHER)
        if watcher is not None:
            watcher.wake()
