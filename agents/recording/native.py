"""One RTSP-over-TCP connection of one camera, recorded on the event loop: no thread, no library call per packet.

The connection's `data_received` parses the interleaved RTP packets (rtsp_client.py), the depacketizer gathers
access units (depacketize.py), and `_frame` places each one in the open fragment, synchronously: timestamps
(Continuity), wall times (Timeline), statistics, fragment and segment cuts. Only when a fragment or a segment is
complete does anything leave that path: an event for the session task, which opens segment files (after the
`before_segment` hook and the index row), writes each fragment with one `writev` in the default executor, and
closes segments. So the hand-offs are one per fragment (at most `fragment_s`), not one per packet.

A frame is placed when the next one arrives (its duration is the difference of their timestamps). Segments
start on a keyframe and are cut at the first keyframe after `segment_s` or when the parameter sets change;
fragments are cut at every keyframe and before they would exceed `fragment_s`. A stall is no frame for
`stall_timeout_s` while the connection stays open. The outcome and the guarantees are those of the PyAV session
(session.py, still used for RTSP over UDP): same index rows, gaps, statistics and hooks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from agents.recording import fmp4, mp4
from agents.recording.depacketize import Depacketizer, Frame, for_codec
from agents.recording.fragfile import FragmentFile
from agents.recording.h26x import (
    H264,
    H264_PPS,
    H264_SPS,
    HEVC_PPS,
    HEVC_SPS,
    HEVC_VPS,
    ParameterSetError,
    VideoFormat,
    h264_format,
    hevc_format,
)
from agents.recording.hooks import Keyframe
from agents.recording.rtsp_client import RtspConnection, RtspError, Track, connect
from agents.recording.session import (
    PROGRESS_S,
    PendingGap,
    SessionContext,
    SessionEnd,
    WriteFailed,
    redact,
    segment_path,
)
from agents.recording.stats import FrameMeter, RecorderState
from agents.recording.timeline import Continuity
from agents.recording.writers import MAX_QUEUED, FileWriter

logger = logging.getLogger(__name__)

BACKLOG_PAUSE = 64
"""Events waiting for the session task (the disk is slow): stop reading the socket above this many..."""
BACKLOG_RESUME = 8
"""...and read again below this many."""
_TIME_BASE = Fraction(1, fmp4.TIMESCALE)


@dataclass(eq=False)
class _Segment:
    """A segment as the frame path builds it; the session task fills in its row and file."""

    start: datetime
    video: VideoFormat
    header: bytes = b""
    """The file's ftyp and moov."""
    ticks: int = 0
    bytes: int = 0
    """Bytes of the file once every fragment cut so far is written (its header included)."""
    sequence: int = 0
    row: int | None = None
    relative: str = ""
    file: FragmentFile | None = None
    writer: FileWriter | None = None
    """Its fragments' queue on a writer thread (None: written through the default executor, awaited)."""
    progress_at: float = field(default_factory=time.monotonic)

    @property
    def duration_s(self) -> float:
        return self.ticks / fmp4.TIMESCALE


@dataclass(frozen=True)
class _Open:
    segment: _Segment


@dataclass(frozen=True)
class _Fragment:
    segment: _Segment
    parts: list[bytes]
    start_estimate: datetime
    duration_s: float
    """The segment's media seconds up to the end of this fragment."""
    size: int
    """The file's size once this fragment is written."""


@dataclass(frozen=True)
class _Close:
    segment: _Segment
    start: datetime
    end: datetime
    hole: timedelta


_Event = _Open | _Fragment | _Close


class NativeSession:
    """One connection; `await run()` returns how it ended (re-raising CancelledError after closing its segment)."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self._events: collections.deque[_Event] = collections.deque()
        self._wake = asyncio.Event()
        self._connection: RtspConnection | None = None
        self._depacketizer: Depacketizer | None = None
        self._continuity = Continuity(_TIME_BASE)
        self._held: tuple[int, bool, bytes, float] | None = None  # the frame waiting for its duration
        self._segment: _Segment | None = None
        self._params: tuple[bytes, ...] = ()
        self._frag_durations: list[int] = []
        self._frag_sizes: list[int] = []
        self._frag_keys: list[bool] = []
        self._frag_data: list[bytes] = []
        self._frag_ticks = 0
        self._frag_limit = int(ctx.settings.fragment_s * fmp4.TIMESCALE)
        self._segment_limit = int(ctx.settings.segment_s * fmp4.TIMESCALE) - 90
        self._last_key_dts: int | None = None
        self._meter = FrameMeter(ctx.stats)
        self._segments = 0
        self._paused = False
        self._failed = False
        self._error: str | None = None
        self._current: _Segment | None = None  # the segment whose file the session task writes

    async def run(self) -> SessionEnd:
        try:
            return await self._run()
        except asyncio.CancelledError:
            await self._finish_quietly("stopped")
            raise
        except WriteFailed as exc:
            return await self._write_failed(exc.cause)
        except Exception as exc:
            logger.exception("%s: recording session failed", self.ctx.camera)
            return await self._end("error", redact(str(exc)))
        finally:
            if self._connection is not None:
                self._connection.close()

    # ------------------------------------------------------------------------------------------------------------
    # The session task

    async def _run(self) -> SessionEnd:
        ctx = self.ctx
        settings = ctx.settings
        try:
            async with asyncio.timeout(settings.open_timeout_s):
                self._connection = await connect(ctx.url, self._sink)
        except (RtspError, ValueError, TimeoutError) as exc:
            detail = "no answer in time" if isinstance(exc, TimeoutError) else redact(str(exc))
            return await self._end("open_failed", detail)
        connection = self._connection
        keepalive_at = time.monotonic() + connection.session_timeout_s / 2
        quiet_since = time.monotonic()
        while True:
            while self._events:
                await self._handle(self._events.popleft())
                if self._paused and len(self._events) < BACKLOG_RESUME:
                    self._paused = False
                    connection.resume_reading()
            if connection.closed.done():
                if self._error is not None:
                    return await self._end("error", self._error)
                return await self._end("drop", "the camera ended the stream")
            now = time.monotonic()
            last = ctx.stats.last_packet_monotonic if self._meter.frames else None
            since = max(quiet_since, last) if last is not None else quiet_since
            if now - since >= settings.stall_timeout_s:
                if not self._meter.frames:
                    return await self._end("open_failed", f"no video for {settings.stall_timeout_s:g} s after PLAY")
                ctx.stats.stalls_total += 1
                ctx.stats.state = RecorderState.STALLED
                return await self._end("stall", f"no packet for {settings.stall_timeout_s:g} s")
            if now >= keepalive_at:
                keepalive_at = now + connection.session_timeout_s / 2
                if connection.session is not None:
                    connection.send("OPTIONS", connection.url)
            self._wake.clear()
            wait = min(settings.stall_timeout_s - (now - since), keepalive_at - now)
            closed = connection.closed
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait((waiter, closed), timeout=max(0.01, wait), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    async def _handle(self, event: _Event) -> None:
        """Apply one event; a cancellation (the recorder stopping) waits for it to complete first, so that a
        segment is never left half closed (a file closed but its row not finished)."""
        if isinstance(event, _Fragment) and event.segment.writer is not None:
            await self._write(event)  # queued at once; being cancelled while waiting for the disk loses nothing
            return
        task = asyncio.ensure_future(self._apply(event))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise

    async def _apply(self, event: _Event) -> None:
        if isinstance(event, _Fragment):
            await self._write(event)
        elif isinstance(event, _Open):
            await self._open(event.segment)
        else:
            await self._close(event)

    async def _open(self, segment: _Segment) -> None:
        ctx = self.ctx
        if ctx.before_segment is not None:
            await ctx.before_segment(ctx.camera)
        segment.relative = segment_path(ctx.camera, segment.start)
        row = await ctx.index.add_segment(ctx.camera, segment.relative, segment.start)
        segment.row = row.id
        path = ctx.root / segment.relative
        loop = asyncio.get_running_loop()
        try:
            segment.file = await loop.run_in_executor(
                None,
                lambda: FragmentFile(
                    path, segment.header, fragment_s=ctx.settings.fragment_s, fsync=ctx.settings.fsync
                ),
            )
        except OSError as exc:
            ctx.pending_gap = ctx.pending_gap or PendingGap(segment.start, "write_error")
            await loop.run_in_executor(None, lambda: path.unlink(missing_ok=True))
            await ctx.index.delete(row.id)
            segment.row = None
            raise WriteFailed(exc) from exc
        if ctx.writers is not None:
            segment.writer = ctx.writers.open(segment.file)
        self._current = segment
        logger.debug("%s: segment %d started at %s", ctx.camera, row.id, segment.start.isoformat())

    async def _write(self, event: _Fragment) -> None:
        segment = event.segment
        file = segment.file
        if file is None:
            return
        writer = segment.writer
        if writer is not None:
            if writer.error is None:
                writer.write(event.parts)
                if writer.waiting > MAX_QUEUED:  # the disk is slow: wait for it rather than queue without end
                    await writer.barrier()
            if writer.error is not None:
                raise WriteFailed(writer.error)
        else:
            try:
                await asyncio.get_running_loop().run_in_executor(None, file.write, event.parts)
            except OSError as exc:
                raise WriteFailed(exc) from exc
        if segment.row is None:
            return
        # The row follows the file (start as now estimated, end, size): listings show it growing, and after a
        # crash reconciliation starts from these times.
        start = event.start_estimate
        end = start + timedelta(seconds=event.duration_s)
        size = file.size if writer is None else event.size
        if self.ctx.progress is not None:
            self.ctx.progress.note(segment.row, start, end, event.duration_s, size)
            return
        now = time.monotonic()
        if now - segment.progress_at >= PROGRESS_S:
            segment.progress_at = now
            await self.ctx.index.finish_segment(segment.row, end, event.duration_s, size, complete=False, start=start)

    async def _close(self, event: _Close) -> None:
        ctx = self.ctx
        segment = event.segment
        file = segment.file
        if file is None or segment.row is None:
            return
        if ctx.progress is not None:
            ctx.progress.forget(segment.row)
        try:
            if segment.writer is not None:
                size = await segment.writer.barrier(file.close)  # after its queued fragments
                if segment.writer.error is not None:
                    raise WriteFailed(segment.writer.error)
            else:
                size = await asyncio.get_running_loop().run_in_executor(None, file.close)
        except OSError as exc:
            raise WriteFailed(exc) from exc
        assert isinstance(size, int)
        self._current = None
        await ctx.index.finish_segment(
            segment.row, event.end, segment.duration_s, size, complete=True, start=event.start
        )
        self._segments += 1
        ctx.stats.segments_total += 1
        gap = ctx.pending_gap
        if gap is None and event.hole:
            gap = PendingGap(event.start - event.hole, "clock_drift")
        ctx.pending_gap = None
        if gap is not None and event.start > gap.start:
            await self._add_gap(gap.start, event.start, gap.reason)

    async def _add_gap(self, start: datetime, end: datetime, reason: str) -> None:
        ctx = self.ctx
        await ctx.index.add_gap(ctx.camera, start, end, reason)
        seconds = (end - start).total_seconds()
        ctx.stats.gaps_total += 1
        ctx.stats.gap_seconds_total += seconds
        logger.info("%s: gap of %.1f s (%s) from %s", ctx.camera, seconds, reason, start.isoformat())

    async def _drain(self) -> None:
        """The connection is done: place the frame held back, close the open segment, write everything."""
        self._failed = True  # nothing more from the connection
        if self._connection is not None:
            self._connection.on_rtp = None
        if self._held is not None:
            self._place(*self._held, self._continuity.step)
            self._held = None
        if self._segment is not None:
            self._cut_fragment()
            self._finish_segment()
        while self._events:
            await self._handle(self._events.popleft())

    async def _end(self, reason: str, detail: str) -> SessionEnd:
        ctx = self.ctx
        try:
            await self._drain()
        except WriteFailed as exc:
            return await self._write_failed(exc.cause)
        if ctx.timeline.last_end is not None and ctx.pending_gap is None:
            ctx.pending_gap = PendingGap(ctx.timeline.last_end, reason)
        last = ctx.stats.last_packet_monotonic if self._meter.frames else None
        return SessionEnd(reason, detail, self._meter.frames, self._segments, time.monotonic(), last)

    async def _finish_quietly(self, reason: str) -> None:
        try:
            await self._end(reason, "")
        except Exception:
            logger.exception("%s: closing the segment at stop failed", self.ctx.camera)

    async def _write_failed(self, exc: BaseException) -> SessionEnd:
        """A write failed: keep what is on disk (cut to its last whole fragment), tell the disk policy, end."""
        ctx = self.ctx
        self._failed = True
        if self._connection is not None:
            self._connection.on_rtp = None
            self._connection.close()
        self._events.clear()
        ctx.stats.write_errors_total += 1
        current, self._current = self._current, None
        if current is not None and current.file is not None and current.row is not None:
            if current.writer is not None:
                await current.writer.barrier(current.file.abandon)  # nothing queued is written after this
            else:
                current.file.abandon()
            await self._salvage(current, current.row)
        if ctx.timeline.last_end is not None and ctx.pending_gap is None:
            ctx.pending_gap = PendingGap(ctx.timeline.last_end, "write_error")
        if ctx.on_write_error is not None:
            try:
                await ctx.on_write_error(ctx.camera, exc)
            except Exception:
                logger.exception("%s: the write-error hook failed", ctx.camera)
        return SessionEnd("write_error", redact(str(exc)), self._meter.frames, self._segments, time.monotonic(), None)

    async def _salvage(self, segment: _Segment, row: int) -> None:
        ctx = self.ctx
        if ctx.progress is not None:
            ctx.progress.forget(row)
        path = ctx.root / segment.relative

        def repair() -> tuple[int, mp4.Probe | None]:
            kept, _ = mp4.truncate_to_fragments(path)
            return kept, mp4.probe(path) if kept else None

        try:
            kept, found = await asyncio.get_running_loop().run_in_executor(None, repair)
        except OSError:
            kept, found = 0, None
        if found is None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: path.unlink(missing_ok=True))
            await ctx.index.delete(row)
            return
        end = segment.start + timedelta(seconds=found.duration_s)
        await ctx.index.finish_segment(row, end, found.duration_s, kept)
        ctx.timeline.written(end)
        gap, ctx.pending_gap = ctx.pending_gap, None
        if gap is not None and segment.start > gap.start:
            await self._add_gap(gap.start, segment.start, gap.reason)

    # ------------------------------------------------------------------------------------------------------------
    # The frame path: called from the connection's data_received, synchronously

    def _sink(self, track: Track) -> Callable[[bytes, int, int], None]:
        """Called before PLAY: the first frames may come in the same read as PLAY's reply."""
        ctx = self.ctx
        depacketizer = for_codec(track.encoding, self._frame)
        ctx.timeline.connect(_TIME_BASE, ctx.clock.now(), time.monotonic())
        for nal in track.params:
            if depacketizer.codec == H264 and nal and nal[0] & 0x1F in (H264_SPS, H264_PPS):
                depacketizer.params[nal[0] & 0x1F] = nal
            elif depacketizer.codec != H264 and len(nal) > 1 and (nal[0] >> 1) & 0x3F in (HEVC_VPS, HEVC_SPS, HEVC_PPS):
                depacketizer.params[(nal[0] >> 1) & 0x3F] = nal
        self._depacketizer = depacketizer
        return depacketizer.packet

    def _frame(self, frame: Frame) -> None:
        if self._failed:
            return
        try:
            self._take(frame)
        except Exception:  # a bug here must end this session (logged), not leave it reading without recording
            logger.exception("%s: a frame could not be recorded; ending the session", self.ctx.camera)
            self._failed = True
            self._error = "a frame could not be recorded (logged)"
            if self._connection is not None:
                self._connection.close()

    def _take(self, frame: Frame) -> None:
        now = time.monotonic()
        self._meter.count(len(frame.data), frame.key, now)
        dts = self._continuity.next(frame.timestamp)
        held = self._held
        self._held = (dts, frame.key, frame.data, now)
        if held is not None:
            self._place(*held, dts - held[0])
        if len(self._events) > BACKLOG_PAUSE and not self._paused and self._connection is not None:
            self._paused = True
            self._connection.pause_reading()

    def _place(self, dts: int, key: bool, data: bytes, arrived: float, duration: int) -> None:
        """Put one frame, whose duration is now known, into the open fragment (cutting fragments and segments)."""
        ctx = self.ctx
        segment = self._segment
        if key:
            if self._last_key_dts is not None:
                ctx.stats.keyframe_interval_s = (dts - self._last_key_dts) / fmp4.TIMESCALE
            self._last_key_dts = dts
            params = self._current_params()
            if segment is not None and (segment.ticks >= self._segment_limit or params != self._params):
                self._cut_fragment()
                self._finish_segment()
                segment = None
            if segment is None:
                segment = self._start_segment(dts, arrived, params)
            elif self._frag_durations:
                self._cut_fragment()
        elif segment is None:
            return  # a segment starts on a keyframe
        elif self._frag_ticks + duration > self._frag_limit and self._frag_durations:
            self._cut_fragment()
        if segment is None:
            return
        self._frag_durations.append(duration)
        self._frag_sizes.append(len(data))
        self._frag_keys.append(key)
        self._frag_data.append(data)
        self._frag_ticks += duration
        segment.ticks += duration
        ctx.timeline.observe(dts, arrived)
        ctx.stats.written_end_wall = segment.start.timestamp() + segment.duration_s
        if ctx.stats.state is not RecorderState.RECORDING:
            ctx.stats.state = RecorderState.RECORDING
        if key and ctx.on_keyframe is not None:
            try:
                ctx.on_keyframe(ctx.camera, Keyframe(segment.video.codec, segment.video.config, data))
            except Exception:
                logger.exception("%s: the keyframe hook failed", ctx.camera)

    def _current_params(self) -> tuple[bytes, ...]:
        depacketizer = self._depacketizer
        assert depacketizer is not None
        params = depacketizer.params
        if depacketizer.codec == H264:
            return params.get(H264_SPS, b""), params.get(H264_PPS, b"")
        return params.get(HEVC_VPS, b""), params.get(HEVC_SPS, b""), params.get(HEVC_PPS, b"")

    def _start_segment(self, dts: int, arrived: float, params: tuple[bytes, ...]) -> _Segment | None:
        ctx = self.ctx
        try:
            video = h264_format(*params) if len(params) == 2 else hevc_format(*params)
        except ParameterSetError as exc:
            logger.debug("%s: keyframe without usable parameter sets: %s", ctx.camera, exc)
            return None
        self._params = params
        start = ctx.timeline.begin_segment(dts, arrived)
        header = fmp4.init_segment(video)
        segment = _Segment(start, video, header=header, bytes=len(header))
        self._segment = segment
        self._frag_ticks = 0
        self._events.append(_Open(segment))
        self._wake.set()
        return segment

    def _cut_fragment(self) -> None:
        segment = self._segment
        if segment is None or not self._frag_durations:
            return
        decode_time = segment.ticks - self._frag_ticks
        segment.sequence += 1
        header = fmp4.fragment_header(
            segment.sequence, decode_time, self._frag_durations, self._frag_sizes, self._frag_keys
        )
        start, _ = self.ctx.timeline.estimate_start()
        parts = [header, *self._frag_data]
        segment.bytes += sum(len(p) for p in parts)
        self._events.append(_Fragment(segment, parts, start, segment.duration_s, segment.bytes))
        self._frag_durations, self._frag_sizes, self._frag_keys, self._frag_data = [], [], [], []
        self._frag_ticks = 0
        self._wake.set()

    def _finish_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        start, end, hole = self.ctx.timeline.finish_segment(segment.duration_s)
        segment.start = start
        self._events.append(_Close(segment, start, end, hole))
        self._wake.set()
