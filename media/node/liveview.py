"""Camera relays on the node: the agents' WHIP publications and the parents' WHEP viewers, one relay per camera.

This is the node's side of live view (issue #6); forwarding itself is `media.relay.Relay` on the shared core
(`media.forwarding`, `media.peers`), the same mechanism meetings use. Here: the peer connections, their
lifetimes, and what the node reports.

Decisions:
- One relay per camera room (`cam-<id>`), created by whichever comes first, the publication or a viewer (a viewer
  who arrives first waits for the picture; the relay's idle timer closes it if no publication comes).
- A second publication for a relay **replaces** the first: the controller only issues a publish token when it
  wants a (new) publication, so a new one means the old one is stale (an agent that restarted, a link that died
  without a DELETE). Viewers stay connected and continue from the new publication's first keyframe.
- The relay closes `relay_idle_close_s` after its last viewer left; the node then closes the publication's peer
  connection, which the agent sees (DTLS close) and reports as stopped.
- A publication that fails or is deleted leaves the relay and its viewers in place, waiting for the next one.
- Viewers are bound to the controller's live-view session id (`sid` in the view token): `CloseRequest.view_sessions`
  closes them, and the load report lists them so that the controller can end the audit record of a session that
  is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from common.clock import Clock
from media.forwarding import Sink, Source
from media.node.config import NodeConfig
from media.node.context import NodeContext
from media.node.extension import ExtensionLoad
from media.peers import add_direct_sink, add_sink
from media.relay import Relay, RelayClosed
from protocol.media import CloseRequest

logger = logging.getLogger(__name__)


async def close_pc(pc: RTCPeerConnection) -> None:
    """Close a connection without letting a cancellation reach aiortc's shared "closed" future (a second
    `close()` awaits it; cancelling that awaiter would cancel the future and break the first `close()`)."""
    await asyncio.shield(pc.close())


def new_session_id() -> str:
    """A WHIP/WHEP resource id: 128 random bits, the capability that lets its holder DELETE the session."""
    return secrets.token_urlsafe(16)


@dataclass
class Publication:
    id: str
    room: str
    pc: RTCPeerConnection
    source: Source
    subject: str


@dataclass
class Viewer:
    id: str
    room: str
    pc: RTCPeerConnection
    sink: Sink
    session: str
    """The controller's live-view session id ('' if the token had none)."""
    device: str
    subject: str


@dataclass
class RelayEntry:
    relay: Relay
    publication: Publication | None = None
    viewers: dict[str, Viewer] = field(default_factory=dict)
    watcher: asyncio.Task[None] | None = None


@dataclass
class Totals:
    """What closed sources and sinks carried, so the node's counters only grow."""

    bytes_in: int = 0
    frames_in: int = 0
    bytes_out: int = 0
    frames_out: int = 0
    keyframe_requests: int = 0


class LiveView:
    """The camera-relay extension of the node (see the module docstring)."""

    name = "liveview"

    def __init__(self, config: NodeConfig) -> None:
        self._config = config
        self._clock: Clock | None = None
        self._relays: dict[str, RelayEntry] = {}
        self._totals = Totals()
        self._pc_tasks: set[asyncio.Task[None]] = set()
        self.closed_relays: list[tuple[str, str]] = []
        """(room, reason) of relays closed, latest last (the most recent 100)."""

    # -- NodeExtension

    def setup(self, app: web.Application, node: NodeContext) -> None:
        from media.node.live_routes import LiveRoutes  # the routes need this class: imported late

        self._clock = node.clock
        LiveRoutes(self).add_routes(app)

    def load(self) -> ExtensionLoad:
        load = ExtensionLoad(
            bytes_in=self._totals.bytes_in,
            frames_in=self._totals.frames_in,
            bytes_out=self._totals.bytes_out,
            frames_out=self._totals.frames_out,
            keyframe_requests=self._totals.keyframe_requests,
        )
        for entry in self._relays.values():
            load.relays += 1
            if entry.publication is not None:
                load.publishers += 1
                stats = entry.publication.source.stats
                load.bytes_in += stats.bytes_in
                load.frames_in += stats.frames_in
                load.keyframe_requests += stats.keyframe_requests_out
            for viewer in entry.viewers.values():
                load.subscribers += 1
                load.streams_out += 1
                sink_stats = viewer.sink.stats
                load.bytes_out += sink_stats.bytes_out
                load.frames_out += sink_stats.frames_out
                if viewer.session:
                    load.view_sessions.append(viewer.session)
        return load

    async def close(self, request: CloseRequest) -> int:
        """Viewers of the named sessions and the named relays, all at once (a connection takes a round trip or
        two to close; one after the other, a few hundred would not fit in the controller's 5 s)."""
        wanted = set(request.view_sessions)
        viewers = [v for e in self._relays.values() for v in e.viewers.values() if v.session in wanted]
        rooms = [(room, self._relays[room]) for room in request.rooms if room in self._relays]
        done = await asyncio.gather(
            *(self.remove_viewer(v.room, v.id, "closed by the controller") for v in viewers),
            *(self._close_relay(room, entry, "closed by the controller") for room, entry in rooms),
        )
        return sum(1 for ok in done if ok)

    async def _close_relay(self, room: str, entry: RelayEntry, reason: str) -> bool:
        await entry.relay.close(reason)
        await self._discard(room, entry)
        return True

    async def shutdown(self) -> None:
        for room, entry in list(self._relays.items()):
            await entry.relay.close("node stopping")
            await self._discard(room, entry)
        # Not cancelled: a task cancelled inside `pc.close()` would cancel aiortc's shared "closed" future.
        await asyncio.gather(*self._pc_tasks, return_exceptions=True)

    # -- what the routes call

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            raise RuntimeError("LiveView.setup() was not called")
        return self._clock

    def peer_connection(self) -> RTCPeerConnection:
        """A connection with the configured ICE servers: always an explicit list, so nothing is contacted that
        the configuration does not name (aiortc falls back to a public STUN server when given None)."""
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self._config.ice_servers
        ]
        return RTCPeerConnection(RTCConfiguration(iceServers=servers))

    def relay_for(self, room: str) -> RelayEntry:
        """The room's relay, created if there is none (by a publication or by a viewer who came first)."""
        existing = self._relays.get(room)
        if existing is not None and not existing.relay.closed.is_set():
            return existing
        relay = Relay(
            room,
            clock=self.clock,
            idle_timeout_s=self._config.relay_idle_close_s,
            max_viewers=self._config.max_viewers_per_relay,
        )
        entry = RelayEntry(relay)
        entry.watcher = asyncio.create_task(self._watch(room, entry), name=f"relay-{room}")
        self._relays[room] = entry
        logger.info("relay %s opened", room)
        return entry

    def relays(self) -> dict[str, RelayEntry]:
        """The open relays by room (a copy; tests and diagnostics read it)."""
        return dict(self._relays)

    async def attach_publication(self, entry: RelayEntry, publication: Publication) -> None:
        """The new publication feeds the relay; one it replaces is closed."""
        old = entry.publication
        entry.publication = publication
        entry.relay.set_source(publication.source)
        self._watch_pc(publication.pc, lambda: self.remove_publication(publication.room, publication.id, "lost"))
        logger.info("relay %s: publication %s from %s%s", publication.room, publication.id[:6], publication.subject,
                    f" (replaces {old.id[:6]})" if old else "")  # fmt: skip
        if old is not None:
            await self._end_publication(old)

    async def remove_publication(self, room: str, publication_id: str, reason: str) -> bool:
        """End a publication (DELETE, a failed connection); the relay and its viewers stay for the next one."""
        entry = self._relays.get(room)
        if entry is None or entry.publication is None or entry.publication.id != publication_id:
            return False
        publication, entry.publication = entry.publication, None
        if not entry.relay.closed.is_set() and entry.relay.source is publication.source:
            entry.relay.set_source(None)
        logger.info("relay %s: publication %s ended (%s)", room, publication_id[:6], reason)
        await self._end_publication(publication)
        return True

    def attach_viewer(self, entry: RelayEntry, viewer_id: str, pc: RTCPeerConnection) -> Sink:
        """A new viewer's sink, sending on `pc` (after its offer was applied); `RelayClosed` when the relay is full
        or closing. The fast send path (payloads made once per frame for every viewer) unless configured off."""
        relay = entry.relay
        if self._config.fast_send_path:
            return add_direct_sink(pc, lambda output: relay.add_viewer(viewer_id, output=output))
        sink = relay.add_viewer(viewer_id)
        add_sink(pc, sink)
        return sink

    def register_viewer(self, entry: RelayEntry, viewer: Viewer) -> None:
        entry.viewers[viewer.id] = viewer
        self._watch_pc(viewer.pc, lambda: self.remove_viewer(viewer.room, viewer.id, "connection lost"))

    async def remove_viewer(self, room: str, viewer_id: str, reason: str) -> bool:
        entry = self._relays.get(room)
        viewer = entry.viewers.pop(viewer_id, None) if entry is not None else None
        if entry is None or viewer is None:
            return False
        self._count_sink(viewer.sink)
        entry.relay.remove_viewer(viewer_id)
        logger.info("relay %s: viewer %s left (%s)", room, viewer_id[:6], reason)
        await close_pc(viewer.pc)
        return True

    # -- lifetimes

    async def _watch(self, room: str, entry: RelayEntry) -> None:
        """When the relay closes (idle, or asked), its connections close and it is forgotten."""
        await entry.relay.closed.wait()
        self.closed_relays = [*self.closed_relays[-99:], (room, entry.relay.close_reason)]
        await self._discard(room, entry)

    async def _discard(self, room: str, entry: RelayEntry) -> None:
        if self._relays.get(room) is entry:
            del self._relays[room]
        publication, entry.publication = entry.publication, None
        if publication is not None:
            await self._end_publication(publication)
        viewers, entry.viewers = entry.viewers, {}
        for viewer in viewers.values():
            self._count_sink(viewer.sink)
        await asyncio.gather(*(close_pc(viewer.pc) for viewer in viewers.values()))
        watcher = entry.watcher
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _end_publication(self, publication: Publication) -> None:
        stats = publication.source.stats
        self._totals.bytes_in += stats.bytes_in
        self._totals.frames_in += stats.frames_in
        self._totals.keyframe_requests += stats.keyframe_requests_out
        await publication.source.close()
        await close_pc(publication.pc)

    def _count_sink(self, sink: Sink) -> None:
        stats = sink.stats
        self._totals.bytes_out += stats.bytes_out
        self._totals.frames_out += stats.frames_out

    def _watch_pc(self, pc: RTCPeerConnection, on_gone: Callable[[], Awaitable[bool]]) -> None:
        """Run `on_gone` once when the connection fails or closes (ICE consent lost, DTLS closed by the peer)."""
        fired = False

        @pc.on("connectionstatechange")
        def changed() -> None:
            nonlocal fired
            if pc.connectionState in ("failed", "closed") and not fired:
                fired = True
                task = asyncio.create_task(_quietly(on_gone()))
                self._pc_tasks.add(task)
                task.add_done_callback(self._pc_tasks.discard)


async def _quietly(step: Awaitable[bool]) -> None:
    try:
        await step
    except RelayClosed:
        pass
    except Exception:
        logger.exception("closing a live-view connection failed")
