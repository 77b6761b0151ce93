"""Meeting rooms as a part of the media node (`media.node.extension.NodeExtension`): the WebSocket route, the rooms
it carries, its load, and closing participants or rooms when the controller asks.

`GET MEETING_WS_PATH` (protocol.media) upgrades to a WebSocket; the first frame must be a `hello` with a meeting
token for this node and this room, within `HELLO_TIMEOUT_S`. Refusals are a `closed` message with the reason
(`token`: the token was refused, and which check failed is in the message; `removed`, `locked`, `ended`, `full`)
and the socket closes with 4403. A room opens with its first participant, in the class mode its token says, and
closes (its media released) when the last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from media.node.context import NodeContext
from media.node.extension import ExtensionLoad
from media.node.guard import rate_limit
from media.rooms.forward import ForwardingPlane, Traffic
from media.rooms.live import LiveRoom
from media.rooms.plane import Plane
from media.rooms.room import MeetingRoom, Refused
from media.rooms.session import Connection
from media.rooms.slots import Feed
from protocol.media import MEETING_WS_PATH, CloseRequest, MeetingRole, TokenKind, TokenRefused
from protocol.meeting import (
    MAX_FRAME_BYTES,
    Closed,
    CloseReason,
    Codec,
    Hello,
    Welcome,
)

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
ENDED_MEMORY_S = 24 * 3600.0
"""How long a room ended for everyone (by its host or the controller) stays closed to joins. A room is one
occurrence of a booking (`meeting_room`), so a later occurrence is another room; a restart forgets."""
ENDPOINT = "meeting"
REFUSED_CLOSE_CODE = 4403


@dataclass(frozen=True)
class MeetingSettings:
    codec: Codec = Codec.VP8
    """One video codec per session; VP8 is what every browser encodes in software."""
    max_video: int = 9
    """Video from at most this many publishers per subscriber (audio from all)."""
    max_participants: int = 300


PlaneFactory = Callable[[str, Codec, Callable[[str, int], None], Callable[[Feed, bool], None]], Plane]


class Meetings:
    name = "meetings"

    def __init__(self, settings: MeetingSettings | None = None, *, plane_factory: PlaneFactory | None = None) -> None:
        self.settings = settings or MeetingSettings()
        self.rooms: dict[str, LiveRoom] = {}
        self._ended: dict[str, float] = {}
        """Rooms ended for everyone -> the monotonic time until which joins are refused."""
        self._node: NodeContext | None = None
        self._plane_factory = plane_factory
        self._closing: set[LiveRoom] = set()
        """Rooms out of `rooms` whose close is under way."""
        self._close_tasks: set[asyncio.Task[None]] = set()
        self._ended_traffic = Traffic()
        """What closed sources and sinks of every room carried (rooms' planes add to it as they close them)."""

    def setup(self, app: web.Application, node: NodeContext) -> None:
        self._node = node
        app.router.add_get(MEETING_WS_PATH, self.websocket)
        app.on_shutdown.append(self._stopping)

    async def _stopping(self, app: web.Application) -> None:
        """Before aiohttp waits for open handlers: every participant is told to rejoin (`shutdown`, not `ended`:
        the session goes on, on this node once it is back or on another), and the WebSockets end."""
        await self.shutdown()

    # ----- the WebSocket -----

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        node = self._node
        assert node is not None
        room_name = request.match_info["room"]
        rate_limit(request, node, ENDPOINT)  # the node's per-address limit on token endpoints: 429 before upgrading
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, heartbeat=20.0)
        await ws.prepare(request)
        try:
            hello = await self._hello(ws)
            claims = node.tokens.verify(hello.token, node=node.config.node_id, kind=TokenKind.MEETING, room=room_name)
        except TokenRefused as exc:
            node.metrics.refused(ENDPOINT, exc.reason)
            logger.info("meeting %s: token refused (%s) from %s", room_name, exc.reason, request.remote)
            return await _refuse(ws, CloseReason.TOKEN, f"{exc.reason}: {exc}")
        except _NoHello as exc:
            node.metrics.refused(ENDPOINT, "no_hello")
            return await _refuse(ws, CloseReason.PROTOCOL, str(exc))
        if self._is_ended(room_name):
            return await _refuse(ws, CloseReason.ENDED, "the meeting has ended")
        live = await self._replace(self._room(room_name, claims.class_mode), hello, claims.subject, claims.class_mode)
        try:
            member = live.room.admit(
                claims.subject, claims.name, claims.role or MeetingRole.PARTICIPANT,
                resume=hello.resume, now=node.clock.monotonic(),
            )  # fmt: skip
        except Refused as exc:
            if not live.connections:
                self._drop(live)
            return await _refuse(ws, CloseReason(exc.reason), str(exc))
        resumed = hello.resume is not None and member.resume == hello.resume
        connection = Connection(live, member, ws)
        connection.send(
            Welcome(
                participant=member.id, name=member.name, role=member.role, class_mode=live.room.class_mode,
                codec=live.room.codec, max_video=live.max_video, may_publish=member.may_publish,
                muted_by_host=member.muted_by_host, resume=member.resume, resumed=resumed, hand=member.hand,
            )
        )  # fmt: skip
        logger.info(
            "meeting %s: %s %s as %s", room_name, member.id, "rejoined" if resumed else "joined", member.role.value
        )
        live.attach(connection)
        await connection.run()
        logger.info("meeting %s: %s left (%s)", room_name, member.id, connection.close_reason)
        return ws

    async def _replace(self, live: LiveRoom, hello: Hello, subject: str, class_mode: bool) -> LiveRoom:
        """A rejoin while the participant's old connection still looks open (a half-open socket, or ICE lost under
        a live WebSocket): close the old one first, so that its member is resumable and nothing of it is left in
        the others' rosters and grids. The room is looked up again: it closes if that was its last connection."""
        old = live.room.present_by_resume(hello.resume, subject)
        connection = live.connections.get(old.id) if old is not None else None
        if connection is None:
            return live
        logger.info("meeting %s: %s rejoins, replacing its old connection", live.name, connection.member.id)
        await connection.shutdown(CloseReason.REPLACED)
        await connection.wait_closed()
        return self._room(live.name, class_mode)

    async def _hello(self, ws: web.WebSocketResponse) -> Hello:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                frame = await ws.receive()
        except TimeoutError:
            raise _NoHello("no hello within the time allowed") from None
        if frame.type is not WSMsgType.TEXT:
            raise _NoHello("the first frame must be a hello (text)")
        try:
            return Hello.model_validate_json(frame.data)
        except ValidationError:
            raise _NoHello("the first frame must be a hello with a token") from None

    # ----- rooms -----

    def _room(self, name: str, class_mode: bool) -> LiveRoom:
        live = self.rooms.get(name)
        if live is not None:
            return live
        node = self._node
        assert node is not None
        holder: list[LiveRoom] = []

        def on_level(participant: str, level: int) -> None:
            holder[0].audio_level(participant, level)

        def on_feed(feed: Feed, started: bool) -> None:
            if holder:
                (holder[0].feed_started if started else holder[0].feed_stopped)(feed)

        codec = self.settings.codec
        if self._plane_factory is not None:
            plane = self._plane_factory(name, codec, on_level, on_feed)
        else:
            ice = list(node.config.ice_servers)
            plane = ForwardingPlane(
                name, codec, node.clock, ice, on_level=on_level, on_feed=on_feed, ended=self._ended_traffic
            )
        room = MeetingRoom(name, class_mode=class_mode, codec=codec, max_participants=self.settings.max_participants)
        live = LiveRoom(room, plane, node.clock, max_video=self.settings.max_video, on_empty=self._drop)
        holder.append(live)
        self.rooms[name] = live
        live.start()
        logger.info("meeting %s: opened (class mode %s)", name, class_mode)
        return live

    def _is_ended(self, name: str) -> bool:
        node = self._node
        assert node is not None
        now = node.clock.monotonic()
        for other, until in list(self._ended.items()):
            if until <= now:
                del self._ended[other]
        return name in self._ended

    def _remember_ended(self, name: str) -> None:
        node = self._node
        assert node is not None
        self._ended[name] = node.clock.monotonic() + ENDED_MEMORY_S

    def _drop(self, live: LiveRoom) -> None:
        if live.room.ended:
            self._remember_ended(live.name)
        if self.rooms.get(live.name) is live:
            del self.rooms[live.name]
            logger.info("meeting %s: closed", live.name)
        self._closing.add(live)  # counted from now on, not once the task starts
        task = asyncio.get_running_loop().create_task(self._close_room(live, CloseReason.ENDED))
        self._close_tasks.add(task)
        task.add_done_callback(self._close_tasks.discard)

    # ----- NodeExtension -----

    def load(self) -> ExtensionLoad:
        publishers = sum(len(live.live_feeds) for live in self.rooms.values())
        subscribers = sum(len(live.connections) for live in self.rooms.values())
        traffic = self.traffic()
        return ExtensionLoad(
            rooms=len(self.rooms), publishers=publishers, subscribers=subscribers,
            streams_out=sum(live.streams_out() for live in self.rooms.values()),
            meeting_rooms=sorted(self.rooms),
            bytes_in=traffic.bytes_in, bytes_out=traffic.bytes_out, frames_in=traffic.frames_in,
            frames_out=traffic.frames_out, keyframe_requests=traffic.keyframe_requests,
        )  # fmt: skip

    def traffic(self) -> Traffic:
        """Since the node started: what the rooms' sources and sinks carried, closed ones included."""
        total = Traffic()
        total.add(self._ended_traffic)
        for live in [*self.rooms.values(), *self._closing]:
            if isinstance(live.plane, ForwardingPlane):
                total.add(live.plane.traffic())
        return total

    async def _close_room(self, live: LiveRoom, reason: CloseReason) -> None:
        """Close a room taken out of `rooms`; until its plane has closed (and added its traffic to the totals), it
        is still counted, so the node's counters never go down."""
        self._closing.add(live)
        try:
            await live.close(reason)
        finally:
            self._closing.discard(live)

    async def close(self, request: CloseRequest) -> int:
        closed = 0
        for name in request.rooms:
            live = self.rooms.pop(name, None)
            self._remember_ended(name)
            if live is not None:
                await self._close_room(live, CloseReason.ENDED)
                closed += 1
        for name, subject in request.participants:
            live = self.rooms.get(name)
            if live is None:
                continue
            for connection in list(live.connections.values()):
                if connection.member.subject == subject:
                    await connection.shutdown(CloseReason.REMOVED, request.reason)
                    closed += 1
        return closed

    async def shutdown(self) -> None:
        rooms, self.rooms = list(self.rooms.values()), {}
        for live in rooms:
            with contextlib.suppress(Exception):
                await self._close_room(live, CloseReason.SHUTDOWN)


class _NoHello(Exception):
    pass


async def _refuse(ws: web.WebSocketResponse, reason: CloseReason, message: str) -> web.WebSocketResponse:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(Closed(reason=reason, message=message).model_dump_json())
        await ws.close(code=REFUSED_CLOSE_CODE, message=reason.value.encode())
    return ws
