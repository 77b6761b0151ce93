"""One real-time pacer per (camera, profile) that fans the shared, pre-packetized frames out to its clients.

The pacer runs only while someone is watching. Every client keeps its own sequence number, SSRC and timestamp
offset; the payloads are shared. A new client starts on a keyframe: TCP clients get the current GOP at once
(so they start without waiting), UDP clients wait for the next keyframe (a burst would overflow socket buffers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from simulator.rtp import RtpFrame, packetize_loop, sender_report
from simulator.rtsp_transport import MediaTransport
from simulator.video import RTP_CLOCK, EncodedLoop, ProfileSpec, get_loop

logger = logging.getLogger(__name__)

SENDER_REPORT_TICKS = 5 * RTP_CLOCK
"""An RTCP sender report (wall clock to RTP time) goes out with the first frame and then every 5 s."""

WRITE_BUFFER_LIMIT = 2 * 1024 * 1024
"""Above this many unsent bytes a client skips frames until the next keyframe once the buffer has drained."""


class RtpSender:
    """One client's RTP state: where its numbering starts and whether it is waiting for a keyframe."""

    def __init__(
        self,
        media: MediaTransport,
        *,
        catch_up: bool,
        on_sent: Callable[[int], None],
        on_skipped: Callable[[], None] = lambda: None,
        write_limit: int = WRITE_BUFFER_LIMIT,
        clock_offset_s: float = 0.0,
    ) -> None:
        self.media = media
        self.write_limit = write_limit
        self.catch_up = catch_up
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.first_timestamp = secrets.randbits(32)
        self._offset: int | None = None  # client timestamp = feed time + offset
        self._started = False  # False: waiting for a keyframe (at start, after PAUSE or congestion)
        self._congested = False
        self._on_sent = on_sent
        self._on_skipped = on_skipped
        self.clock_offset_s = clock_offset_s
        """The camera's clock error: its RTCP sender reports carry its (wrong) wall clock."""
        self.frames_sent = 0
        self.frames_skipped = 0
        self.packets_sent = 0
        self.octets_sent = 0  # RTP payload bytes, as RTCP counts them
        self._last_sent: int | None = None  # feed time of the last frame sent
        self._last_report: int | None = None  # feed time of the last sender report

    def next_timestamp(self, feed_time: int) -> int:
        offset = self._offset if self._offset is not None else self.first_timestamp - feed_time
        return (feed_time + offset) & 0xFFFFFFFF

    def restart(self) -> None:
        """Wait for a keyframe again (after PAUSE); timestamps keep following real time."""
        self._started = False

    def on_frame(self, frame: RtpFrame, feed_time: int) -> None:
        if self._last_sent is not None and feed_time <= self._last_sent:
            return  # a catch-up after PAUSE within one GOP: never send a timestamp twice or backwards
        if not self._started:
            if not frame.keyframe or self.media.buffered() > self.write_limit // 2:
                if self._congested:
                    self.frames_skipped += 1
                    self._on_skipped()
                return
            self._started = True
            self._congested = False
            if self._offset is None:
                self._offset = self.first_timestamp - feed_time
        elif self.media.buffered() > self.write_limit:
            # A slow reader: drop frames until the next keyframe (once drained) instead of queueing without end.
            self._started = False
            self._congested = True
            self.frames_skipped += 1
            self._on_skipped()
            return
        timestamp = self.next_timestamp(feed_time)
        self._last_sent = feed_time
        sent = self.media.send(frame, self.seq, timestamp, self.ssrc)
        self.seq = (self.seq + len(frame.payloads)) & 0xFFFF
        self.frames_sent += 1
        self.packets_sent += len(frame.payloads)
        self.octets_sent += frame.byte_size
        if self._last_report is None or feed_time - self._last_report >= SENDER_REPORT_TICKS:
            self._last_report = feed_time
            report = sender_report(
                self.ssrc, time.time() + self.clock_offset_s, timestamp, self.packets_sent, self.octets_sent
            )
            sent += self.media.send_control(report)
        self._on_sent(sent)


class StreamFeed:
    """The shared frames of one camera profile, paced in real time to every subscribed sender."""

    def __init__(self, camera_name: str, profile: ProfileSpec, cache_dir: Path | None) -> None:
        self.camera_name = camera_name
        self.profile = profile
        self._cache_dir = cache_dir
        self._frames: tuple[RtpFrame, ...] = ()
        self._loop_data: EncodedLoop | None = None
        self._senders: set[RtpSender] = set()
        self._gop: list[tuple[RtpFrame, int]] = []  # frames since the last keyframe, with their feed times
        self._time = 0  # running feed time, 90 kHz ticks; never goes back, even across restarts
        self._last_tick: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    async def encoded(self) -> EncodedLoop:
        if self._loop_data is None:
            loop = await get_loop(self.camera_name, self.profile, self._cache_dir)
            if self._loop_data is None:
                self._frames = packetize_loop(loop)  # about 1 ms for a 2 Mbit/s loop: not worth a thread
                self._loop_data = loop
        return self._loop_data

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def subscribers(self) -> int:
        return len(self._senders)

    def current_time(self) -> int:
        return self._time

    async def subscribe(self, sender: RtpSender) -> None:
        await self.encoded()
        self._senders.add(sender)
        if not self.running:
            self._start()
        elif sender.catch_up:
            for frame, feed_time in list(self._gop):
                sender.on_frame(frame, feed_time)

    def unsubscribe(self, sender: RtpSender) -> None:
        self._senders.discard(sender)
        if not self._senders and self._task is not None:
            # Nobody watching: stop pacing. The task is kept until it has finished, and stop() awaits it.
            task, self._task = self._task, None
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._last_tick is not None:  # resume: keep feed time moving with real time
            self._time += max(0, round((loop.time() - self._last_tick) * RTP_CLOCK))
        self._gop = []
        self._task = loop.create_task(self._run(), name=f"rtsp-feed-{self.camera_name}-{self.profile.path}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        frames = self._frames
        index = 0
        deadline = loop.time()
        logger.debug("%s: %s feed started", self.camera_name, self.profile.path)
        try:
            while True:
                frame = frames[index]
                if frame.keyframe:
                    self._gop = []
                self._gop.append((frame, self._time))
                for sender in list(self._senders):
                    try:
                        sender.on_frame(frame, self._time)
                    except Exception:  # one broken client must not stop the picture for the others
                        logger.exception("%s: %s feed dropping a client", self.camera_name, self.profile.path)
                        self._senders.discard(sender)
                self._last_tick = loop.time()
                self._time += frame.duration
                index = (index + 1) % len(frames)
                deadline += frame.duration / RTP_CLOCK
                delay = deadline - loop.time()
                if delay < -1.0:  # starved (a stopped debugger, an overloaded host): do not burst to catch up
                    logger.debug("%s: %s feed %.1f s late; resetting pace", self.camera_name, self.profile.path, -delay)
                    deadline = loop.time()
                    delay = 0.0
                await asyncio.sleep(max(0.0, delay))
        finally:
            logger.debug("%s: %s feed stopped", self.camera_name, self.profile.path)

    async def stop(self) -> None:
        self._senders.clear()
        tasks = list(self._stopping)
        if self._task is not None:
            tasks.append(self._task)
            self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
