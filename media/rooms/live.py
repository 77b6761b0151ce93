"""A meeting room while it runs on the node: the rules (`MeetingRoom`), the media plane, the connections.

`apply(outcome)` carries out what a rule change means: messages, disconnections, a new roster for everyone,
and new slot assignments when who-is-heard changed. `refresh()` recomputes every subscriber's slots (audio from
every heard publisher, video from at most `max_video`, by recent speech); a ticker every `TICK_S` re-ranks
speakers and announces who speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from common.clock import Clock
from media.rooms.plane import Plane
from media.rooms.room import MeetingRoom, Member, Outcome
from media.rooms.selection import wanted_audio, wanted_video
from media.rooms.session import Connection
from media.rooms.slots import Feed
from media.rooms.speakers import SpeakerTracker
from protocol.media import MeetingRole
from protocol.meeting import CloseReason, Speakers

logger = logging.getLogger(__name__)

TICK_S = 0.25
ROSTER_DELAY_S = 0.05
CLOSE_GRACE_S = 5.0
"""How long closing a room waits for its connections' shutdowns and offers under way before cancelling them."""


class LiveRoom:
    def __init__(
        self,
        room: MeetingRoom,
        plane: Plane,
        clock: Clock,
        *,
        max_video: int,
        on_empty: Callable[[LiveRoom], None],
    ) -> None:
        self.room = room
        self.plane = plane
        self.clock = clock
        self.max_video = max_video
        self.speakers = SpeakerTracker()
        self.connections: dict[str, Connection] = {}
        self.live_feeds: set[Feed] = set()
        self._on_empty = on_empty
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._last_speaking: list[str] = []
        self._last_order: list[str] = []
        self._closed = False
        self._roster_pending: asyncio.TimerHandle | None = None
        self._refresh_pending: asyncio.Handle | None = None

    @property
    def name(self) -> str:
        return self.room.name

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick(), name=f"meeting-ticker-{self.name}")

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine owned by this room (cancelled when the room closes)."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- membership -----

    def attach(self, connection: Connection) -> None:
        self.connections[connection.member.id] = connection
        self.broadcast_roster()
        self.refresh()

    def detach(self, connection: Connection, *, resumable: bool = False) -> None:
        if self.connections.get(connection.member.id) is connection:
            del self.connections[connection.member.id]
        self.speakers.forget(connection.member.id)
        self.live_feeds = {feed for feed in self.live_feeds if feed[0] != connection.member.id}
        self.room.leave(connection.member.id, resumable=resumable, now=self.clock.monotonic())
        self.broadcast_roster()
        self.refresh()
        if not self.connections:
            self._on_empty(self)

    # ----- the media plane's events -----

    def feed_started(self, feed: Feed) -> None:
        self.live_feeds.add(feed)
        self.refresh()

    def feed_stopped(self, feed: Feed) -> None:
        self.live_feeds.discard(feed)
        self.refresh()

    def audio_level(self, participant: str, level: int) -> None:
        """A publisher's audio packet: counted towards speaking only while it is heard (not muted)."""
        member = self.room.members.get(participant)
        if member is not None and member.microphone and self.room.forwards_audio(member):
            self.speakers.observe(participant, level, self.clock.monotonic())

    # ----- rule outcomes -----

    def apply(self, actor: Member, outcome: Outcome) -> None:
        for member_id, message in outcome.messages:
            connection = self.connections.get(member_id)
            if connection is not None:
                connection.send(message)
        for member_id, reason in outcome.close:
            connection = self.connections.get(member_id)
            if connection is not None:
                self.spawn(connection.shutdown(reason))
        if outcome.ended:
            logger.info("%s: ended by host %s", self.name, actor.id)
        if outcome.roster:
            self.broadcast_roster()
        self.refresh()

    def broadcast_roster(self) -> None:
        """Soon, once: joins and hand-raises come in bursts (a hundred schools joining a broadcast), and a roster
        per change per participant would be quadratic. Everyone but hosts and observers sees the same list, so it
        is serialized once for them."""
        if self._roster_pending is None:
            self._roster_pending = asyncio.get_running_loop().call_later(ROSTER_DELAY_S, self._send_rosters)

    def _send_rosters(self) -> None:
        self._roster_pending = None
        shared: str | None = None
        for connection in list(self.connections.values()):
            member = connection.member
            if member.is_host or member.role is MeetingRole.OBSERVER:
                connection.send(self.room.roster_for(member))
                continue
            if shared is None:
                shared = self.room.roster_for(member).model_dump_json()
            connection.send_text(shared)

    def refresh(self) -> None:
        """Every subscriber's slots, recomputed from who is present, heard and speaking: once per turn of the event
        loop however many changes came in it (a burst of joins costs one pass, not one per join)."""
        if self._refresh_pending is None and not self._closed:
            self._refresh_pending = asyncio.get_running_loop().call_soon(self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh_pending = None
        for connection in list(self.connections.values()):
            if connection.closed:
                continue
            audio = wanted_audio(self.room, connection.member, self.live_feeds)
            video = wanted_video(self.room, connection.member, self.live_feeds, self.speakers)
            connection.update_slots(audio, video, self.max_video)

    async def _tick(self) -> None:
        while True:
            await self.clock.sleep(TICK_S)
            now = self.clock.monotonic()
            speaking = self.speakers.speaking(now)
            if set(speaking) != set(self._last_speaking):
                self._last_speaking = speaking
                for connection in list(self.connections.values()):
                    connection.send(Speakers(ids=speaking))
            order = self.speakers.order([m.id for m in self.room.publishers()])
            if order != self._last_order:
                self._last_order = order
                self.refresh()

    async def close(self, reason: CloseReason) -> None:
        if self._closed:
            return
        self._closed = True
        for pending in (self._roster_pending, self._refresh_pending):
            if pending is not None:
                pending.cancel()
        for connection in list(self.connections.values()):
            await connection.shutdown(reason)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        # Let what is under way finish first (a connection being shut down closes its peer connections: cancelled
        # half-way, their ICE sockets would be left open), then cancel what is left.
        under_way = {task for task in self._tasks if task is not asyncio.current_task()}
        if under_way:
            await asyncio.wait(under_way, timeout=CLOSE_GRACE_S)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.plane.close()

    def streams_out(self) -> int:
        return sum(connection.streams_out for connection in self.connections.values())
