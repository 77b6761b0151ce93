"""One RTSP connection of one camera, run in a thread of its own: pull packets with PyAV, remux them into segments.

PyAV calls block, so the whole connection (open, demux, mux, fsync) runs in the camera's session thread; the
event loop is reached only through `Bridge` for the index and the hooks, once per segment. The read timeout is
the stall timeout: a connection that stays open without packets ends within `stall_timeout_s` (PyAV's interrupt
callback), which also bounds how long stopping a stalled session takes.

Segments start on a keyframe. A packet without timestamps (the first one after PLAY can have none) takes the
next packet's minus its duration, or is dropped before the first keyframe. The error text of PyAV and FFmpeg can
hold the URL with its credentials: it is scrubbed before it is logged or returned.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av

from agents.recording import mp4
from agents.recording.hooks import BeforeSegmentHook, Keyframe, KeyframeHook, WriteErrorHook
from agents.recording.index import SegmentIndex
from agents.recording.progress import ProgressRows
from agents.recording.segment import SegmentWriter
from agents.recording.stats import FrameMeter, RecorderState, RecorderStats
from agents.recording.timeline import Continuity, Timeline
from agents.recording.writers import DiskWriters
from common.clock import Clock
from common.logs import SECRETS
from common.redact import scrub_urls

logger = logging.getLogger(__name__)

T = TypeVar("T")
BRIDGE_TIMEOUT_S = 60.0
PROGRESS_S = 1.0
"""The open segment's row is brought up to date this often."""
WRITE_ERRORS: tuple[type[Exception], ...] = (OSError, av.error.FFmpegError)
STALL_ERRORS: tuple[type[Exception], ...] = (av.error.TimeoutError, av.error.ExitError)
"""A read that timed out (FFmpeg's socket timeout), or was interrupted (PyAV's)."""
READ_ERRORS: tuple[type[Exception], ...] = (av.error.FFmpegError, OSError, ValueError, IndexError)


def redact(text: str) -> str:
    """Error text without URL credentials or any registered secret."""
    return SECRETS.scrub(scrub_urls(text))


class SessionStopped(Exception):
    """The recorder asked the session to stop."""


class WriteFailed(Exception):
    """Writing a segment failed; `cause` is the library's error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Bridge:
    """Runs coroutines on the event loop from the session thread and waits for them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            return future.result(BRIDGE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise


@dataclass
class PendingGap:
    """Recording stopped at `start` for `reason`; the gap closes when the next segment starts."""

    start: datetime
    reason: str


@dataclass(frozen=True)
class SessionSettings:
    segment_s: float
    fragment_s: float
    transport: str
    stall_timeout_s: float
    open_timeout_s: float
    fsync: bool


@dataclass(frozen=True)
class SessionEnd:
    """How a session ended: reason (stall, drop, error, write_error, open_failed, stopped) and a scrubbed detail."""

    reason: str
    detail: str
    packets: int
    segments: int
    ended_monotonic: float = 0.0
    last_packet_monotonic: float | None = None


@dataclass
class SessionContext:
    """What a session needs; `timeline`, `stats` and `pending_gap` outlive it (they belong to the recorder)."""

    camera: str
    url: str
    root: Path
    settings: SessionSettings
    index: SegmentIndex
    bridge: Bridge
    clock: Clock
    stats: RecorderStats
    timeline: Timeline
    stop: threading.Event
    pending_gap: PendingGap | None = None
    on_keyframe: KeyframeHook | None = None
    before_segment: BeforeSegmentHook | None = None
    on_write_error: WriteErrorHook | None = None
    writers: DiskWriters | None = None
    """The supervisor's segment-writer threads (RTSP over TCP); None: the default executor."""
    progress: ProgressRows | None = None
    """The supervisor's batched updates of open segments' rows (RTSP over TCP); None: one update per second."""


def segment_path(camera: str, start: datetime) -> str:
    """The file of a segment, relative to the recordings root: <camera>/<day>/<start>.mp4 (UTC)."""
    return f"{camera}/{start:%Y-%m-%d}/{start:%Y%m%dT%H%M%S.%fZ}.mp4"


class _Open:
    """The segment being written: its index row and its writer."""

    def __init__(self, segment_id: int, start: datetime, relative: str, writer: SegmentWriter) -> None:
        self.segment_id = segment_id
        self.start = start
        self.relative = relative
        self.writer = writer
        self.start_ts = start.timestamp()
        self.progress_at = time.monotonic()

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.writer.duration_s)


class Session:
    """One connection; `run()` (in the session thread) returns how it ended and never raises."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self._open: _Open | None = None
        self._meter = FrameMeter(ctx.stats)
        self._segments = 0
        self._pending: Any = None
        self._last_key_dts: int | None = None

    def run(self) -> SessionEnd:
        ctx = self.ctx
        try:
            return self._run()
        except SessionStopped:
            return self._end("stopped", "")
        except WriteFailed as exc:
            return self._write_failed(exc.cause)
        except READ_ERRORS as exc:
            detail = redact(str(exc))
            if isinstance(exc, STALL_ERRORS) and self._meter.frames:
                ctx.stats.stalls_total += 1
                ctx.stats.state = RecorderState.STALLED
                return self._end("stall", f"no packet for {ctx.settings.stall_timeout_s:g} s")
            return self._end("open_failed" if not self._meter.frames else "error", detail)
        except Exception as exc:
            logger.exception("%s: recording session failed", ctx.camera)
            return self._end("error", redact(str(exc)))

    # ------------------------------------------------------------------------------------------------------------

    def _run(self) -> SessionEnd:
        ctx = self.ctx
        settings = ctx.settings
        # The stall timeout is FFmpeg's own socket timeout (microseconds), checked in C: PyAV's read timeout
        # would take the GIL in every interrupt check of every session. PyAV's timeout bounds the opening only.
        options = {"rtsp_transport": settings.transport, "timeout": str(int(settings.stall_timeout_s * 1_000_000))}
        with av.open(ctx.url, "r", options=options, timeout=(settings.open_timeout_s, None)) as container:
            if not container.streams.video:
                return self._end("error", "the stream has no video")
            stream = container.streams.video[0]
            time_base: Fraction = stream.time_base or Fraction(1, 90_000)
            continuity = Continuity(time_base)
            ctx.timeline.connect(time_base, ctx.clock.now(), time.monotonic())
            if ctx.stop.is_set():
                raise SessionStopped
            for packet in container.demux(stream):
                if ctx.stop.is_set():
                    raise SessionStopped
                if packet.size == 0:
                    continue  # a flush packet at the end of the stream
                self._meter.count(int(packet.size), packet.is_keyframe, time.monotonic())
                for ready in self._timestamped(packet):
                    self._handle(ready, stream, continuity, time_base)
            return self._end("drop", "the camera ended the stream")

    def _timestamped(self, packet: Any) -> list[Any]:
        """Packets with timestamps, in order: one without waits for the next and takes its time minus a frame."""
        if packet.dts is None and packet.pts is None:
            if self._pending is None:
                self._pending = packet
            return []
        out: list[Any] = []
        pending, self._pending = self._pending, None
        if pending is not None:
            step = pending.duration or packet.duration or 0
            if step:
                pending.dts = packet.dts if packet.dts is not None else packet.pts
                pending.dts -= step
                pending.pts = pending.dts
                out.append(pending)
        if packet.dts is None:
            packet.dts = packet.pts
        out.append(packet)
        return out

    def _handle(self, packet: Any, stream: Any, continuity: Continuity, time_base: Fraction) -> None:
        ctx = self.ctx
        dts = continuity.next(int(packet.dts), int(packet.duration or 0) or None)
        pts = dts + max(0, int(packet.pts if packet.pts is not None else packet.dts) - int(packet.dts))
        mono = time.monotonic()
        key = bool(packet.is_keyframe)
        current = self._open
        if key:
            if self._last_key_dts is not None:
                ctx.stats.keyframe_interval_s = float((dts - self._last_key_dts) * time_base)
            self._last_key_dts = dts
        if current is None:
            if not key:
                return  # a segment starts on a keyframe
            self._start_segment(dts, mono, stream)
        elif key and current.writer.duration_s >= ctx.settings.segment_s - 1e-3:
            self._finish_segment()
            self._start_segment(dts, mono, stream)
        current = self._open
        assert current is not None
        try:
            current.writer.write(packet, dts, pts)
        except WRITE_ERRORS as exc:
            raise WriteFailed(exc) from exc
        ctx.timeline.observe(dts, mono)
        ctx.stats.written_end_wall = current.start_ts + current.writer.duration_s
        if ctx.stats.state is not RecorderState.RECORDING:
            ctx.stats.state = RecorderState.RECORDING
        if mono - current.progress_at >= PROGRESS_S:
            self._progress(current, mono)
        if key and ctx.on_keyframe is not None:
            try:
                context = stream.codec_context
                keyframe = Keyframe(str(context.name), bytes(context.extradata or b""), bytes(packet))
                ctx.on_keyframe(ctx.camera, keyframe)
            except Exception:
                logger.exception("%s: the keyframe hook failed", ctx.camera)

    def _start_segment(self, dts: int, mono: float, stream: Any) -> None:
        ctx = self.ctx
        start = ctx.timeline.begin_segment(dts, mono)
        if ctx.before_segment is not None:
            hook = ctx.before_segment
            ctx.bridge.call(lambda: hook(ctx.camera))
        relative = segment_path(ctx.camera, start)
        row = ctx.bridge.call(lambda: ctx.index.add_segment(ctx.camera, relative, start))
        try:
            writer = SegmentWriter(
                ctx.root / relative, stream, fragment_s=ctx.settings.fragment_s, fsync=ctx.settings.fsync
            )
        except WRITE_ERRORS as exc:
            ctx.pending_gap = PendingGap(start, "write_error")
            (ctx.root / relative).unlink(missing_ok=True)
            ctx.bridge.call(lambda: ctx.index.delete(row.id))
            raise WriteFailed(exc) from exc
        self._open = _Open(row.id, start, relative, writer)
        logger.debug("%s: segment %d started at %s", ctx.camera, row.id, start.isoformat())

    def _progress(self, current: _Open, mono: float) -> None:
        """Bring the open segment's row up to date (its start as now estimated, end, size): a listing shows it
        growing, and after a crash reconciliation starts from these times."""
        ctx = self.ctx
        current.progress_at = mono
        start, _ = ctx.timeline.estimate_start()
        current.start, current.start_ts = start, start.timestamp()
        duration = current.writer.duration_s
        end = start + timedelta(seconds=duration)
        size = current.writer.size()
        ctx.bridge.call(
            lambda: ctx.index.finish_segment(current.segment_id, end, duration, size, complete=False, start=start)
        )

    def _finish_segment(self) -> None:
        current, self._open = self._open, None
        if current is None:
            return
        ctx = self.ctx
        try:
            size = current.writer.close()
        except WRITE_ERRORS as exc:
            self._open = current
            raise WriteFailed(exc) from exc
        duration = current.writer.duration_s
        start, end, hole = ctx.timeline.finish_segment(duration)
        ctx.bridge.call(
            lambda: ctx.index.finish_segment(current.segment_id, end, duration, size, complete=True, start=start)
        )
        self._segments += 1
        ctx.stats.segments_total += 1
        gap = ctx.pending_gap
        if gap is None and hole:
            gap = PendingGap(start - hole, "clock_drift")
        ctx.pending_gap = None
        if gap is not None and start > gap.start:
            self._add_gap(gap.start, start, gap.reason)

    def _add_gap(self, start: datetime, end: datetime, reason: str) -> None:
        ctx = self.ctx
        ctx.bridge.call(lambda: ctx.index.add_gap(ctx.camera, start, end, reason))
        seconds = (end - start).total_seconds()
        ctx.stats.gaps_total += 1
        ctx.stats.gap_seconds_total += seconds
        logger.info("%s: gap of %.1f s (%s) recorded", ctx.camera, seconds, reason)

    def _end(self, reason: str, detail: str) -> SessionEnd:
        """Close the open segment (if any) and report how the session ended."""
        ctx = self.ctx
        try:
            self._finish_segment()
        except WriteFailed as exc:
            return self._write_failed(exc.cause)
        if ctx.timeline.last_end is not None and ctx.pending_gap is None:
            ctx.pending_gap = PendingGap(ctx.timeline.last_end, reason)
        return SessionEnd(
            reason, detail, self._meter.frames, self._segments, time.monotonic(), ctx.stats.last_packet_monotonic
        )

    def _write_failed(self, exc: BaseException) -> SessionEnd:
        """A write failed: keep what is on disk (cut to its last whole fragment), tell the disk policy, end."""
        ctx = self.ctx
        ctx.stats.write_errors_total += 1
        current, self._open = self._open, None
        if current is not None:
            current.writer.abandon()
            self._salvage(current)
        if ctx.timeline.last_end is not None and ctx.pending_gap is None:
            ctx.pending_gap = PendingGap(ctx.timeline.last_end, "write_error")
        if ctx.on_write_error is not None:
            hook = ctx.on_write_error
            try:
                ctx.bridge.call(lambda: hook(ctx.camera, exc))
            except Exception:
                logger.exception("%s: the write-error hook failed", ctx.camera)
        return SessionEnd("write_error", redact(str(exc)), self._meter.frames, self._segments, time.monotonic(), None)

    def _salvage(self, current: _Open) -> None:
        ctx = self.ctx
        path = ctx.root / current.relative
        try:
            kept, _ = mp4.truncate_to_fragments(path)
            found = mp4.probe(path) if kept else None
        except OSError:
            found = None
        if found is None:
            path.unlink(missing_ok=True)
            ctx.bridge.call(lambda: ctx.index.delete(current.segment_id))
            return
        end = current.start + timedelta(seconds=found.duration_s)
        ctx.bridge.call(lambda: ctx.index.finish_segment(current.segment_id, end, found.duration_s, kept))
        ctx.timeline.written(end)
        gap, ctx.pending_gap = ctx.pending_gap, None
        if gap is not None and current.start > gap.start:
            self._add_gap(gap.start, current.start, gap.reason)
