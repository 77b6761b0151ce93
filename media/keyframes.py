"""Keyframes: recognising them in encoded frames, and asking a publisher for one without flooding it.

A subscriber that joins, is re-pointed to another publisher, fell behind or lost packets needs a keyframe before
anything it receives decodes. Requests from many subscribers are coalesced: at most one PLI per `min_interval`,
and a request that comes too soon is deferred to the end of the interval, never dropped (dropping left 8 of 10
late joiners without a keyframe in the prototype). A keyframe that arrives meanwhile satisfies the deferred one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from common.clock import Clock

logger = logging.getLogger(__name__)

_H264_IDR = 5


def h264_nal_types(annexb: bytes) -> list[int]:
    """The NAL unit types of an Annex-B access unit (a 3- or 4-byte start code before each unit)."""
    types: list[int] = []
    pos = annexb.find(b"\x00\x00\x01")
    while pos >= 0 and pos + 3 < len(annexb):
        types.append(annexb[pos + 3] & 0x1F)
        pos = annexb.find(b"\x00\x00\x01", pos + 3)
    return types


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a frame decodes on its own. Audio frames always do."""
    name = codec.upper()
    if name == "H264":
        return _H264_IDR in h264_nal_types(data)
    if name == "VP8":
        # RFC 6386 9.1: the frame tag's first bit is 0 for a key frame.
        return len(data) >= 3 and data[0] & 0x01 == 0
    return True


class KeyframeRequests:
    """Coalesces keyframe requests to one publisher: at most one sent per `min_interval` seconds."""

    def __init__(
        self, send: Callable[[], Awaitable[bool]], clock: Clock, min_interval: float = 0.3, max_retries: int = 30
    ) -> None:
        self._send = send
        self._clock = clock
        self._min_interval = min_interval
        self._max_retries = max_retries
        self._last_sent: float | None = None
        self._deferred: asyncio.Task[None] | None = None
        self._closed = False
        self.requested = 0
        """Requests asked for (by subscribers, joins, re-points, drops)."""
        self.sent = 0
        """Requests that reached the publisher as a PLI."""
        self.coalesced = 0
        """Requests folded into one already sent or deferred."""
        self.unsent_in_a_row = 0
        """Attempts in a row that could not reach the publisher (each is tried again after `min_interval`)."""

    def request(self) -> None:
        """Ask for a keyframe soon: now if the last one was long enough ago, else at the end of the interval."""
        self.requested += 1
        if self._closed:
            return
        if self._deferred is not None:
            self.coalesced += 1
            return
        now = self._clock.monotonic()
        wait = 0.0 if self._last_sent is None else self._last_sent + self._min_interval - now
        if wait > 0:
            self.coalesced += 1
        self._deferred = asyncio.get_running_loop().create_task(self._send_at(now + max(0.0, wait)))

    def keyframe_arrived(self) -> None:
        """A keyframe came: a request deferred until now is satisfied."""
        self.unsent_in_a_row = 0
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    async def _send_at(self, when: float) -> None:
        try:
            wait = when - self._clock.monotonic()
            if wait > 0:
                await self._clock.sleep(wait)
            self._last_sent = self._clock.monotonic()
            self._deferred = None
            if await self._send():
                self.sent += 1
                self.unsent_in_a_row = 0
                return
            # Not sent (the publisher's stream is not known yet, or its connection is not up): try again after the
            # interval rather than lose the request, until a keyframe comes or `max_retries` attempts have failed.
            self.unsent_in_a_row += 1
            if self.unsent_in_a_row <= self._max_retries and not self._closed and self._deferred is None:
                retry_at = self._clock.monotonic() + self._min_interval
                self._deferred = asyncio.get_running_loop().create_task(self._send_at(retry_at))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("keyframe request failed")

    async def close(self) -> None:
        self._closed = True
        task, self._deferred = self._deferred, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
