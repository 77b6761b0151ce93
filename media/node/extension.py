"""What a part of the node (camera relays, meeting rooms) gives the node core: routes, load, closing.

The core (`app.py`) owns the HTTP server, tokens, metrics, the load reporter and `/control/close`; each
extension registers its own routes in `setup()`, reports what it carries in `load()` (read by the reporter and
by /metrics), closes what a `CloseRequest` names, and releases everything in `shutdown()`. Camera relays are
`media.node.liveview.LiveView`; meeting rooms plug in the same way (`media.rooms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from protocol.media import CloseRequest

if TYPE_CHECKING:
    from media.node.context import NodeContext


@dataclass
class ExtensionLoad:
    """What one extension carries now; the node adds them up for its report."""

    rooms: int = 0
    relays: int = 0
    publishers: int = 0
    subscribers: int = 0
    streams_out: int = 0
    view_sessions: list[str] = field(default_factory=list)
    meeting_rooms: list[str] = field(default_factory=list)
    bytes_in: int = 0
    """Totals since the node started (closed relays and rooms included): they only grow."""
    bytes_out: int = 0
    frames_in: int = 0
    frames_out: int = 0
    keyframe_requests: int = 0

    def add(self, other: ExtensionLoad) -> ExtensionLoad:
        return ExtensionLoad(
            rooms=self.rooms + other.rooms,
            relays=self.relays + other.relays,
            publishers=self.publishers + other.publishers,
            subscribers=self.subscribers + other.subscribers,
            streams_out=self.streams_out + other.streams_out,
            view_sessions=self.view_sessions + other.view_sessions,
            meeting_rooms=self.meeting_rooms + other.meeting_rooms,
            bytes_in=self.bytes_in + other.bytes_in,
            bytes_out=self.bytes_out + other.bytes_out,
            frames_in=self.frames_in + other.frames_in,
            frames_out=self.frames_out + other.frames_out,
            keyframe_requests=self.keyframe_requests + other.keyframe_requests,
        )


class NodeExtension(Protocol):
    name: str

    def setup(self, app: web.Application, node: NodeContext) -> None:
        """Register routes (and anything that needs the app) before the server starts."""
        ...

    def load(self) -> ExtensionLoad: ...

    async def close(self, request: CloseRequest) -> int:
        """Close what `request` names that this extension carries; how many sessions or rooms were closed."""
        ...

    async def shutdown(self) -> None:
        """Close every peer connection; called once when the node stops."""
        ...
