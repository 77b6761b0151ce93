"""One camera's recorder: sessions one after another, with backoff between them, until stopped.

Over TCP (the default) a session runs on the event loop itself (native.py: our own RTSP client and MP4
fragments, no thread); cancelling the recorder cancels it, and it closes its segment before it returns. Over UDP
a session is PyAV's (session.py) and runs in a thread started for it and awaited through a future (never the
default executor, whose few workers many cameras would exhaust); cancelling the recorder asks it to stop and
waits for its thread: at most one packet interval while packets flow, at most the stall timeout when they do
not. Either way no thread, file descriptor or task outlives the recorder.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from pathlib import Path

from agents.recording.cameras import StreamTarget, with_credentials
from agents.recording.hooks import BeforeSegmentHook, KeyframeHook, WriteErrorHook
from agents.recording.index import SegmentIndex
from agents.recording.native import NativeSession
from agents.recording.progress import ProgressRows
from agents.recording.session import (
    Bridge,
    PendingGap,
    Session,
    SessionContext,
    SessionEnd,
    SessionSettings,
    redact,
)
from agents.recording.stats import RecorderState, RecorderStats
from agents.recording.timeline import Timeline
from agents.recording.writers import DiskWriters
from common.backoff import Backoff
from common.clock import Clock

logger = logging.getLogger(__name__)


class Recorder:
    """Records one stream (`target`) into `root`; `run()` until cancelled."""

    def __init__(
        self,
        target: StreamTarget,
        *,
        root: Path,
        index: SegmentIndex,
        settings: SessionSettings,
        clock: Clock,
        backoff: Backoff,
        max_drift_s: float = 1.0,
        on_keyframe: KeyframeHook | None = None,
        before_segment: BeforeSegmentHook | None = None,
        on_write_error: WriteErrorHook | None = None,
        writers: DiskWriters | None = None,
        progress: ProgressRows | None = None,
    ) -> None:
        self.target = target
        self.camera = target.camera
        self.stats = RecorderStats(camera=target.camera)
        self.last_end: SessionEnd | None = None
        self.history: collections.deque[SessionEnd] = collections.deque(maxlen=1000)
        """How the latest sessions ended, oldest first."""
        self.sessions = 0
        self.session_ended = asyncio.Event()
        """Set after each session (tests wait on it)."""
        self._root = root
        self._index = index
        self._settings = settings
        self._clock = clock
        self._backoff = backoff
        self._max_drift_s = max_drift_s
        self._hooks = (on_keyframe, before_segment, on_write_error)
        self._writers = writers
        self._progress = progress
        self._stop = threading.Event()

    async def run(self) -> None:
        latest = await self._index.latest_end(self.camera)
        timeline = Timeline(latest, max_drift_s=self._max_drift_s)
        pending = None if latest is None else PendingGap(latest, "not_recording")
        bridge = Bridge(asyncio.get_running_loop())
        try:
            while True:
                ctx = SessionContext(
                    camera=self.camera,
                    url=with_credentials(self.target.url, self.target.login),
                    root=self._root,
                    settings=self._settings,
                    index=self._index,
                    bridge=bridge,
                    clock=self._clock,
                    stats=self.stats,
                    timeline=timeline,
                    stop=self._stop,
                    pending_gap=pending,
                    on_keyframe=self._hooks[0],
                    before_segment=self._hooks[1],
                    on_write_error=self._hooks[2],
                    writers=self._writers,
                    progress=self._progress,
                )
                end = await self._session(ctx)
                pending = ctx.pending_gap
                self.last_end = end
                self.history.append(end)
                self.sessions += 1
                self.session_ended.set()
                if end.segments:
                    self._backoff.reset()
                delay = self._backoff.next_delay()
                if end.reason != "stall":
                    self.stats.state = RecorderState.RECONNECTING
                self.stats.reconnects_total += 1
                log = logger.info if end.packets else logger.debug
                log("%s: stream ended (%s: %s); reconnecting in %.1f s", self.camera, end.reason, end.detail, delay)
                await self._clock.sleep(delay)
                self.stats.state = RecorderState.RECONNECTING
        finally:
            self.stats.state = RecorderState.STOPPED

    async def _session(self, ctx: SessionContext) -> SessionEnd:
        if ctx.settings.transport == "tcp":
            return await NativeSession(ctx).run()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[SessionEnd] = loop.create_future()

        def body() -> None:
            try:
                result = Session(ctx).run()
            except BaseException as exc:  # run() does not raise; this is the last guard for the future
                result = SessionEnd("error", redact(str(exc)), 0, 0)
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(_resolve, done, result)

        thread = threading.Thread(target=body, name=f"record-{self.camera}", daemon=True)
        self._stop.clear()
        thread.start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            self._stop.set()
            await done
            raise
        finally:
            await asyncio.to_thread(thread.join)


def _resolve(future: asyncio.Future[SessionEnd], result: SessionEnd) -> None:
    if not future.done():
        future.set_result(result)
