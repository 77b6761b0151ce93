"""The recording supervisor: one recorder per stream to record, started and stopped as the inventory changes.

`run()` owns every recorder task (a TaskGroup); `update(report)` (an inventory listener) and `sync(reports)`
decide which streams should be recorded and start or stop recorders to match. `run()` first reconciles the
index with the disk, so recorders start on an index that agrees with it. `stop()` ends `run()`, which stops
every recorder and waits for their session threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from agents.discovery.credentials import Login
from agents.recording.cameras import StreamTarget, targets
from agents.recording.config import RecordingConfig
from agents.recording.hooks import BeforeSegmentHook, KeyframeHook, WriteErrorHook
from agents.recording.index import SegmentIndex
from agents.recording.progress import ProgressRows
from agents.recording.reconcile import ReconcileReport, reconcile
from agents.recording.recorder import Recorder
from agents.recording.session import PROGRESS_S, SessionSettings
from agents.recording.stats import RecorderStats
from agents.recording.writers import DiskWriters
from common.backoff import Backoff
from common.clock import Clock, SystemClock
from protocol.camera import CameraReport, CameraState

logger = logging.getLogger(__name__)

WRITER_THREADS = 4
"""Threads writing segment files (fsync blocks a thread, not a core)."""
LoginFor = Callable[[str, str], Login]
"""(endpoint_ref, address) -> the login to use (CredentialBook.for_device)."""


class RecordingSupervisor:
    """Recorders for every ready camera; `stats()`, `index`, `root` for metrics, retention and the API."""

    def __init__(
        self,
        config: RecordingConfig,
        root: Path,
        index: SegmentIndex,
        login_for: LoginFor,
        *,
        clock: Clock | None = None,
        on_keyframe: KeyframeHook | None = None,
        before_segment: BeforeSegmentHook | None = None,
        on_write_error: WriteErrorHook | None = None,
    ) -> None:
        self.config = config
        self.root = root
        self.index = index
        self._login_for = login_for
        self._clock: Clock = clock or SystemClock()
        self._hooks = (on_keyframe, before_segment, on_write_error)
        self._wanted: dict[str, StreamTarget] = {}
        self._by_ref: dict[str, list[str]] = {}
        self._recorders: dict[str, tuple[Recorder, asyncio.Task[None]]] = {}
        self._stats: dict[str, RecorderStats] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._writers: DiskWriters | None = None
        self._progress: ProgressRows | None = None
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        self.reconciled: ReconcileReport | None = None

    # ------------------------------------------------------------------------------------------------------------
    # What other parts read

    def stats(self) -> dict[str, RecorderStats]:
        """Every recorder's figures by camera id (stopped recorders keep their last figures)."""
        return dict(self._stats)

    def recorder(self, camera: str) -> Recorder | None:
        entry = self._recorders.get(camera)
        return entry[0] if entry else None

    def wanted(self) -> list[str]:
        """The ids of the streams that should be recorded (running or about to be)."""
        return sorted(self._wanted)

    def cameras(self) -> list[str]:
        """The ids of the streams being recorded now."""
        return sorted(self._recorders)

    # ------------------------------------------------------------------------------------------------------------
    # Inventory changes

    def update(self, report: CameraReport) -> None:
        """An inventory listener: record this camera's streams while it is ready.

        A camera that was ready and then fails a discovery pass (unreachable, or refusing ONVIF logins) keeps
        its recorder: RTSP may well still work, and the recorder reconnects with its own backoff anyway. Its
        recording stops when it is disabled in the configuration, or restarts when a new report changes its
        stream URIs.
        """
        found = targets(report, self.config)
        if not found and report.state is not CameraState.READY and self._by_ref.get(report.endpoint_ref):
            override = self.config.for_camera(report.endpoint_ref)
            if self.config.enabled if override.enabled is None else override.enabled:
                return
        for camera in self._by_ref.pop(report.endpoint_ref, []):
            self._wanted.pop(camera, None)
        self._by_ref[report.endpoint_ref] = [t.camera for t in found]
        for target in found:
            self._wanted[target.camera] = target
        self._apply()

    def sync(self, reports: Iterable[CameraReport]) -> None:
        """Record exactly the ready cameras among `reports` (at start, from the inventory's snapshot)."""
        self._wanted.clear()
        self._by_ref.clear()
        for report in reports:
            found = targets(report, self.config)
            self._by_ref[report.endpoint_ref] = [t.camera for t in found]
            for target in found:
                self._wanted[target.camera] = target
        self._apply()

    # ------------------------------------------------------------------------------------------------------------
    # Lifetime

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Reconcile the index with the disk, then run the recorders until `stop()` (or cancellation)."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        self.reconciled = await reconcile(self.index, self.root)
        self._writers = DiskWriters(WRITER_THREADS)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._progress = ProgressRows(self.index, PROGRESS_S)
                progress = tasks.create_task(self._progress.run(), name="recording progress")
                self._tasks = tasks
                self._apply()
                self.started.set()
                await self._stop.wait()
                for _, task in self._recorders.values():
                    task.cancel()
                for _, task in self._recorders.values():
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                progress.cancel()
        finally:
            self._tasks = None
            self._progress = None
            self._recorders.clear()
            writers, self._writers = self._writers, None
            await asyncio.to_thread(writers.stop)  # the recorders are done: their files are closed

    def _apply(self) -> None:
        tasks = self._tasks
        if tasks is None:
            return
        for camera in sorted(set(self._recorders) - set(self._wanted)):
            _, task = self._recorders.pop(camera)
            logger.info("%s: recording stopped", camera)
            task.cancel()
        for camera, target in sorted(self._wanted.items()):
            running = self._recorders.get(camera)
            if running is not None and running[0].target.url == target.url and not running[1].done():
                continue
            if running is not None:
                running[1].cancel()
            self._start(tasks, target)

    def _start(self, tasks: asyncio.TaskGroup, target: StreamTarget) -> None:
        config = self.config
        settings = SessionSettings(
            segment_s=target.segment_s,
            fragment_s=config.fragment_s,
            transport=target.transport,
            stall_timeout_s=config.stall_timeout_s,
            open_timeout_s=config.open_timeout_s,
            fsync=config.fsync,
        )
        login = self._login_for(target.endpoint_ref, target.address)
        recorder = Recorder(
            StreamTarget(
                target.camera,
                target.endpoint_ref,
                target.address,
                target.url,
                target.transport,
                target.segment_s,
                login,
            ),
            root=self.root,
            index=self.index,
            settings=settings,
            clock=self._clock,
            backoff=Backoff(base=config.reconnect_base_s, cap=config.reconnect_cap_s),
            max_drift_s=config.max_drift_s,
            on_keyframe=self._hooks[0],
            before_segment=self._hooks[1],
            on_write_error=self._hooks[2],
            writers=self._writers,
            progress=self._progress,
        )
        previous = self._stats.get(target.camera)
        if previous is not None:
            # Counters continue across restarts of a camera's recorder (metrics counters must not go back).
            recorder.stats = previous
        self._stats[target.camera] = recorder.stats
        task = tasks.create_task(self._guarded(recorder), name=f"record {target.camera}")
        self._recorders[target.camera] = (recorder, task)
        logger.info("%s: recording %s over %s", target.camera, target.url, target.transport)

    async def _guarded(self, recorder: Recorder) -> None:
        """A recorder that fails (a bug) is logged and restarted after a pause, never taking the others down."""
        backoff = Backoff(base=1.0, cap=60.0)
        while True:
            try:
                await recorder.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = backoff.next_delay()
                logger.exception("%s: recorder failed; restarting in %.1f s", recorder.camera, delay)
                await self._clock.sleep(delay)
