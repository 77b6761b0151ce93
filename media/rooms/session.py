"""One participant's signalling connection: the WebSocket, its limits, its two peer connections, its slots.

The WebSocket carries `protocol.meeting` messages. Limits on every message: aiohttp refuses frames larger than
`MAX_FRAME_BYTES` (the socket closes with 1009), pydantic models bound every field (SDP, ids, lists), and a token
bucket per connection refuses a flood message by message; a connection that keeps flooding or sending
malformed messages is closed. Outgoing messages go through a bounded queue and one writer task, so a slow
browser never holds up the room: when its queue is full it is disconnected.

Negotiation: the browser offers on its publish connection and the node answers; the node offers on the
subscribe connection (one m-line per slot) and the browser answers. One subscribe offer is outstanding at a
time; changes made meanwhile are offered again once the answer is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import WSMessage, WSMsgType, web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from pydantic import ValidationError

from common.ratelimit import TokenBucket
from media.rooms.plane import Sink
from media.rooms.room import Member, Refused
from media.rooms.slots import Feed, assign
from protocol.meeting import (
    CLIENT_MESSAGE,
    Closed,
    CloseReason,
    Error,
    Hand,
    HostCommand,
    Leave,
    MediaState,
    PublishAnswer,
    PublishOffer,
    ServerMessage,
    Slot,
    Slots,
    Source,
    SubscribeAnswer,
    SubscribeOffer,
)

if TYPE_CHECKING:
    from media.rooms.live import LiveRoom

logger = logging.getLogger(__name__)

MESSAGES_PER_SECOND = 10.0
MESSAGE_BURST = 40
MAX_STRIKES = 50
"""Refused or malformed messages a connection may send before it is closed."""
OUTBOX = 256
_QUIET = frozenset({CloseReason.LEFT, CloseReason.DROPPED})
"""Reasons not told to the browser (it left, or its socket is gone) and that do not override an earlier reason."""
_RESUMABLE = frozenset({CloseReason.DROPPED, CloseReason.REPLACED})


class _Slot:
    """One subscribe m-line. It carries media only once the browser's answer for it is in (`ready`): before that
    the send path has no negotiated codec, so the feed it should carry is kept in `planned` until then."""

    def __init__(self, transceiver: RTCRtpTransceiver, sink: Sink) -> None:
        self.transceiver = transceiver
        self.sink = sink
        self.planned: Feed | None = None
        self.ready = False
        self.offered = False

    def apply(self) -> None:
        if self.ready and self.sink.feed != self.planned:
            self.sink.point(self.planned)


class Connection:
    """A participant's WebSocket and peer connections, inside one live room."""

    def __init__(self, live: LiveRoom, member: Member, ws: web.WebSocketResponse) -> None:
        self.live = live
        self.member = member
        self.ws = ws
        self._bucket = TokenBucket(live.clock, MESSAGES_PER_SECOND, MESSAGE_BURST)
        self._strikes = 0
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX)
        self._writer: asyncio.Task[None] | None = None
        self._publish: RTCPeerConnection | None = None
        self._publish_lock = asyncio.Lock()
        self._published: set[Feed] = set()
        self._subscribe: RTCPeerConnection | None = None
        self._slots: dict[str, list[_Slot]] = {"audio": [], "video": []}
        self._offer_version = 0
        self._offer_pending = False
        self._offer_dirty = False
        self._sent_slots: dict[str, Slot] = {}
        self._sources: dict[str, Source] = {}
        self._shut = False
        self._done = asyncio.Event()
        self.closed = False
        self.close_reason: CloseReason | None = None

    # ----- sending -----

    def send(self, message: ServerMessage) -> None:
        self.send_text(message.model_dump_json())

    def send_text(self, text: str) -> None:
        """A message already serialized (one roster for many participants)."""
        if self.closed:
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            logger.info("%s %s: signalling queue full, disconnecting", self.live.name, self.member.id)
            self.closed = True
            self.close_reason = CloseReason.PROTOCOL
            self.live.spawn(self._close_slow())

    async def _close_slow(self) -> None:
        await self.ws.close(code=1008, message=b"too slow")

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            if message is None:
                return
            try:
                await self.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                return

    # ----- the connection's life -----

    async def run(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"meeting-writer-{self.member.id}")
        try:
            async for frame in self.ws:
                await self._receive(frame)
                if self.closed:
                    break
        finally:
            await self.shutdown(self.close_reason or CloseReason.DROPPED)

    async def _receive(self, frame: WSMessage) -> None:
        if frame.type is not WSMsgType.TEXT:
            if frame.type is WSMsgType.BINARY:
                self._strike("binary", "send text frames")
            return
        if not self._bucket.take():
            self._strike("rate_limited", "too many messages: slow down")
            return
        try:
            message = CLIENT_MESSAGE.validate_json(frame.data)
        except ValidationError as exc:
            self._strike("bad_message", _brief(exc))
            return
        try:
            await self._handle(message)
        except Refused as exc:
            self.send(Error(code=exc.reason, message=str(exc)))

    def _strike(self, code: str, message: str) -> None:
        self._strikes += 1
        fatal = self._strikes >= MAX_STRIKES
        self.send(Error(code=code, message=message, fatal=fatal))
        if fatal:
            self.closed = True
            self.close_reason = CloseReason.PROTOCOL

    async def _handle(self, message: object) -> None:
        match message:
            case PublishOffer():
                await self._on_publish_offer(message)
            case SubscribeAnswer():
                await self._on_subscribe_answer(message)
            case MediaState():
                self.live.apply(self.member, self.live.room.media_state(self.member, message))
            case Hand():
                self.live.apply(self.member, self.live.room.hand(self.member, message.raised))
            case HostCommand():
                self.live.apply(self.member, self.live.room.act(self.member, message))
            case Leave():
                self.closed = True
                self.close_reason = CloseReason.LEFT
            case _:
                self._strike("unexpected", "hello only once, first")

    async def shutdown(self, reason: CloseReason, message: str = "") -> None:
        """Tell the browser why (when it is still there), close both peer connections, leave the room. A dropped or
        replaced connection leaves its member resumable (`MeetingRoom.leave`)."""
        if self.close_reason is None or reason not in _QUIET:
            self.close_reason = reason
        if self._shut:
            return
        self._shut = True
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            if reason not in _QUIET:
                self._outbox.put_nowait(Closed(reason=reason, message=message).model_dump_json())
            self._outbox.put_nowait(None)
        if self._writer is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._writer), 2.0)
            self._writer.cancel()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close()
        self.live.detach(self, resumable=self.close_reason in _RESUMABLE)
        for feed in self._published:
            self.live.plane.unpublish(feed)
        for slots in self._slots.values():
            for slot in slots:
                slot.sink.close()
        try:
            for pc in (self._publish, self._subscribe):
                if pc is not None:
                    try:
                        await pc.close()
                    except Exception:  # the other one is still closed
                        logger.exception("%s %s: closing a peer connection failed", self.live.name, self.member.id)
        finally:
            self._done.set()

    async def wait_closed(self) -> None:
        """Until `shutdown` has finished (its member out of the room, its feeds unpublished)."""
        await self._done.wait()

    # ----- publishing -----

    async def _on_publish_offer(self, offer: PublishOffer) -> None:
        if not self.member.may_publish:
            raise Refused("not_allowed", "observers send nothing")
        sources = {track.mid: track.source for track in offer.tracks}
        if Source.SCREEN in sources.values() and not self.live.room.may_share_screen(self.member):
            raise Refused("not_allowed", "only the host and presenters share a screen in a class")
        async with self._publish_lock:
            if self._publish is None:
                self._publish = self.live.plane.new_peer()
                pc = self._publish

                @pc.on("track")
                def on_track(track: MediaStreamTrack) -> None:
                    self._on_track(pc, track)

            self._sources = sources
            try:
                sdp = without_mdns_candidates(offer.sdp)
                await self._publish.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                self.live.plane.prepare_publish(self._publish)
                answer = await self._publish.createAnswer()
                await self._publish.setLocalDescription(answer)
            except Exception as exc:
                logger.debug("%s %s: publish offer refused", self.live.name, self.member.id, exc_info=True)
                await self._reset_publish()
                raise Refused("bad_sdp", f"the offer could not be applied ({type(exc).__name__})") from exc
            self.send(PublishAnswer(sdp=self._publish.localDescription.sdp))
        self.live.refresh()

    async def _reset_publish(self) -> None:
        """A publish offer that failed half-way leaves the connection in no known state: start again from none
        (the participant's feeds stop until its next offer)."""
        pc, self._publish = self._publish, None
        for feed in self._published:
            self.live.plane.unpublish(feed)
        self._published.clear()
        if pc is not None:
            await pc.close()

    def _on_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        transceiver = next((t for t in pc.getTransceivers() if t.receiver.track is track), None)
        mid = transceiver.mid if transceiver is not None else None
        source = self._sources.get(mid or "")
        if source is None:
            source = Source.MICROPHONE if track.kind == "audio" else Source.CAMERA
        if (source is Source.MICROPHONE) != (track.kind == "audio"):
            logger.info("%s %s: m-line %s is %s, not %s", self.live.name, self.member.id, mid, track.kind, source)
            return
        feed = (self.member.id, source)
        setattr(self.member, source.value, True)  # publishing a track turns it on; media_state turns it off
        if feed in self._published:
            self.live.plane.unpublish(feed)
        self._published.add(feed)
        self.live.plane.publish(feed, pc, track)

    # ----- subscribing -----

    def update_slots(self, audio: list[Feed], video: list[Feed], max_video: int) -> None:
        """Re-point this subscriber's slots to carry `audio` and `video` (in priority order), adding slots if needed."""
        grew = False
        for kind, wanted, limit in (("audio", audio, len(audio)), ("video", video, max_video)):
            slots = self._slots[kind]
            plan = assign([slot.planned for slot in slots], wanted, limit)
            while len(slots) < len(plan):
                if self._subscribe is None:
                    self._subscribe = self.live.plane.new_peer()
                transceiver, sink = self.live.plane.add_sink(self._subscribe, kind)
                slots.append(_Slot(transceiver, sink))
                grew = True
            for slot, feed in zip(slots, plan, strict=False):
                slot.planned = feed
                slot.apply()
        if grew:
            self._negotiate()
        else:
            self._announce_slots()

    def _announce_slots(self) -> None:
        current: dict[str, Slot] = {}
        for slots in self._slots.values():
            for slot in slots:
                mid = slot.transceiver.mid
                if mid is None:
                    continue
                feed = slot.planned
                current[mid] = (
                    Slot(participant=feed[0], source=feed[1]) if feed else Slot(participant=None, source=None)
                )
        if current != self._sent_slots:
            self._sent_slots = current
            self.send(Slots(slots=current))

    def _negotiate(self) -> None:
        if self._offer_pending:
            self._offer_dirty = True
            return
        self._offer_pending = True
        self.live.spawn(self._offer())

    async def _offer(self) -> None:
        assert self._subscribe is not None
        try:
            offer = await self._subscribe.createOffer()
            await self._subscribe.setLocalDescription(offer)
        except Exception:
            logger.exception("%s %s: subscribe offer failed", self.live.name, self.member.id)
            self._offer_pending = False
            return
        for slots in self._slots.values():
            for slot in slots:
                slot.offered = True
        self._offer_version += 1
        self._announce_slots()
        self.send(SubscribeOffer(version=self._offer_version, sdp=self._subscribe.localDescription.sdp))

    async def _on_subscribe_answer(self, answer: SubscribeAnswer) -> None:
        if self._subscribe is None or not self._offer_pending or answer.version != self._offer_version:
            raise Refused("stale_answer", "no subscribe offer with this version is waiting")
        try:
            sdp = without_mdns_candidates(answer.sdp)
            await self._subscribe.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            logger.debug("%s %s: subscribe answer refused", self.live.name, self.member.id, exc_info=True)
            raise Refused("bad_sdp", f"the answer could not be applied ({type(exc).__name__})") from exc
        self._offer_pending = False
        for slots in self._slots.values():
            for slot in slots:
                if slot.offered and not slot.ready:
                    slot.ready = True
                    slot.apply()
        if self._offer_dirty:
            self._offer_dirty = False
            self._negotiate()

    @property
    def streams_out(self) -> int:
        return sum(1 for slots in self._slots.values() for slot in slots if slot.sink.feed is not None)


def without_mdns_candidates(sdp: str) -> str:
    """Browsers hide their addresses behind mDNS names (`<uuid>.local`) that the node cannot resolve (and aioice's
    attempt to resolve them ties a lock to one event loop); without those lines the browser's own connectivity
    checks reach the node's candidates and the pair forms from its peer-reflexive address."""
    lines = [line for line in sdp.splitlines() if not (line.startswith("a=candidate:") and ".local " in line)]
    return "\r\n".join(lines) + "\r\n"


def _brief(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "not a valid message"
    where = ".".join(str(part) for part in errors[0]["loc"]) or "message"
    return f"{where}: {errors[0]['msg']}"[:200]
