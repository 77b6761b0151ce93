"""A camera relay: the agent's publication of one camera (a `Source`) and the parents watching it (receive-only
`Sink`s), on the forwarding core. One upstream copy, whatever the number of viewers.

The relay closes itself `idle_timeout_s` after its last viewer leaves (or after it opened, if nobody came), so
the node can end the agent's publication; `closed` is set then, with `close_reason`. The node owns the peer
connections; the relay only owns the forwarding between them. The clock is injected, so tests move time by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from common.clock import Clock
from media.forwarding import Output, Sink, Source

logger = logging.getLogger(__name__)


class RelayClosed(Exception):
    """The relay is closed: no viewer can join it."""


class Relay:
    """One camera's source and its viewers' sinks."""

    def __init__(self, name: str, *, clock: Clock, idle_timeout_s: float = 30.0, max_viewers: int = 10_000) -> None:
        if idle_timeout_s < 0:
            raise ValueError("idle_timeout_s must not be negative")
        self.name = name
        self._clock = clock
        self._idle_timeout_s = idle_timeout_s
        self._max_viewers = max_viewers
        self._source: Source | None = None
        self._viewers: dict[str, Sink] = {}
        self._idle: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.viewers_joined = 0
        self._arm_idle()

    @property
    def source(self) -> Source | None:
        return self._source

    @property
    def viewers(self) -> dict[str, Sink]:
        """The viewers' sinks by viewer id (a copy)."""
        return dict(self._viewers)

    def set_source(self, source: Source | None) -> None:
        """The agent's publication arrived, was replaced (re-published) or went away (None): every viewer
        follows it, starting on a keyframe (from the new source's GOP cache when it has one)."""
        if self.closed.is_set():
            raise RelayClosed(f"relay {self.name} is closed")
        if source is not None and source.kind != "video":
            raise ValueError("a camera relay carries video")
        self._source = source
        for sink in self._viewers.values():
            sink.point(source)

    def add_viewer(
        self,
        viewer_id: str,
        *,
        max_frames: int = 200,
        max_bytes: int = 3 * 1024 * 1024,
        output: Output | None = None,
    ) -> Sink:
        """A new viewer's sink, pointed at the source (it starts from the GOP cache at once). Add `sink.track` to
        the viewer's peer connection (`media.peers.add_sink`), or pass the fast path's `output`
        (`media.peers.add_direct_sink(pc, lambda out: relay.add_viewer(viewer_id, output=out))`). A viewer id
        already present is replaced."""
        if self.closed.is_set():
            raise RelayClosed(f"relay {self.name} is closed")
        if viewer_id not in self._viewers and len(self._viewers) >= self._max_viewers:
            raise RelayClosed(f"relay {self.name} has {self._max_viewers} viewers already")
        old = self._viewers.pop(viewer_id, None)
        if old is not None:
            old.close()
        sink = Sink(
            f"{self.name}/{viewer_id}",
            "video",
            clock=self._clock,
            max_frames=max_frames,
            max_bytes=max_bytes,
            output=output,
        )
        self._viewers[viewer_id] = sink
        self.viewers_joined += 1
        self._disarm_idle()
        sink.point(self._source)
        return sink

    def remove_viewer(self, viewer_id: str) -> None:
        """The viewer left (or was closed): its sink ends; the idle timer starts when it was the last."""
        sink = self._viewers.pop(viewer_id, None)
        if sink is not None:
            sink.close()
        if not self._viewers and not self.closed.is_set():
            self._arm_idle()

    def _arm_idle(self) -> None:
        if self._idle is None:
            deadline = self._clock.monotonic() + self._idle_timeout_s
            self._idle = asyncio.get_running_loop().create_task(self._close_when_idle(deadline))

    def _disarm_idle(self) -> None:
        task, self._idle = self._idle, None
        if task is not None:
            task.cancel()

    async def _close_when_idle(self, deadline: float) -> None:
        await self._clock.sleep(max(0.0, deadline - self._clock.monotonic()))
        if not self._viewers:
            self._idle = None
            await self.close("idle")

    async def close(self, reason: str = "closed") -> None:
        """End every viewer's sink and the source; the peer connections are the node's to close."""
        if self.closed.is_set():
            return
        self.close_reason = reason
        for sink in self._viewers.values():
            sink.close()
        self._viewers.clear()
        task, self._idle = self._idle, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        source, self._source = self._source, None
        if source is not None:
            await source.close()
        self.closed.set()
        logger.info("relay %s closed: %s", self.name, reason)
