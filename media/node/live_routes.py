"""WHIP (`POST /whip/{room}`, RFC 9725) for agents and WHEP (`POST /whep/{room}`) for viewers' browsers.

Both take an SDP offer (application/sdp, at most `max_sdp_bytes`) with a Bearer media token from the controller,
and answer 201 with the SDP answer and `Location: /whip|whep/{room}/{id}`, the session resource. `DELETE` on it
ends the session (the random id is the capability: 128 bits, only ever sent to the client that made the session).
No trickle ICE: aiortc gathers its candidates before answering, and the offer must carry the client's.

Order of checks: the per-address rate (429), the body (415, 413, 400), the token (401/403, counted; publish and
view tokens are single use), the room (404), capacity (503), the offer itself (400 when it has no H.264 video).
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from media.forwarding import Source
from media.node.context import NODE, NodeContext
from media.node.guard import SDP_TYPE, authorize, error, rate_limit, read_sdp
from media.node.liveview import LiveView, Publication, Viewer, close_pc, new_session_id
from media.peers import source_from_track
from media.relay import RelayClosed
from media.rooms.session import without_mdns_candidates
from protocol.media import TokenKind
from rtc.aiortc_adapter import AdapterError, VideoCodec, force_codecs, transceiver_of_track

logger = logging.getLogger(__name__)

CAMERA_ROOM = re.compile(r"^cam-[0-9]{1,18}$")
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
NEGOTIATION_ERRORS: tuple[type[Exception], ...] = (ValueError, AdapterError, KeyError, IndexError)
"""What aiortc raises for an offer it cannot use (malformed SDP, no common codec, missing attributes)."""


def _room(request: web.Request) -> str:
    room = request.match_info["room"]
    if not CAMERA_ROOM.match(room):
        raise error(404, "no such camera relay (relays are named cam-<camera id>)")
    return room


def _answer(sdp: str, location: str) -> web.Response:
    return web.Response(status=201, text=sdp, content_type=SDP_TYPE, headers={"Location": location})


class LiveRoutes:
    def __init__(self, live: LiveView) -> None:
        self._live = live

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/whip/{room}", self.whip)
        app.router.add_delete("/whip/{room}/{session}", self.whip_delete)
        app.router.add_post("/whep/{room}", self.whep)
        app.router.add_delete("/whep/{room}/{session}", self.whep_delete)
        # CORS preflights (answered by the middleware for allowed origins; refused for others).
        app.router.add_route("OPTIONS", "/whep/{room}", _preflight)
        app.router.add_route("OPTIONS", "/whep/{room}/{session}", _preflight)

    # -- WHIP: the agent's publication

    async def whip(self, request: web.Request) -> web.Response:
        node = request.app[NODE]
        rate_limit(request, node, "whip")
        room = _room(request)
        offer = await read_sdp(request, node)
        claims = authorize(request, node, "whip", TokenKind.PUBLISH, room, single_use=True)
        live = self._live
        entry = live.relay_for(room)
        pc = live.peer_connection()
        found: list[tuple[Source, MediaStreamTrack]] = []

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not found:
                try:
                    force_codecs(transceiver_of_track(pc, track), VideoCodec.H264)
                    source, _tap = source_from_track(pc, track, name=room, clock=live.clock)
                except AdapterError as exc:
                    logger.info("whip %s: unusable offer: %s", room, exc)
                    return
                found.append((source, track))

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            if not found:
                raise error(400, "the offer has no H.264 video to publish")
            for transceiver in pc.getTransceivers():
                if transceiver.receiver.track is not found[0][1]:
                    transceiver.direction = "inactive"  # audio (or a second video) is not taken
            await pc.setLocalDescription(await pc.createAnswer())
        except web.HTTPException:
            await close_pc(pc)
            raise
        except NEGOTIATION_ERRORS as exc:
            await close_pc(pc)
            raise error(400, f"the SDP offer cannot be used: {exc}") from None
        publication = Publication(new_session_id(), room, pc, found[0][0], claims.subject)
        try:
            await live.attach_publication(entry, publication)
        except RelayClosed:
            await publication.source.close()
            await close_pc(pc)
            raise error(409, "the relay is closing; ask the controller again") from None
        node.metrics.sessions.labels("whip").inc()
        return _answer(pc.localDescription.sdp, f"/whip/{room}/{publication.id}")

    async def whip_delete(self, request: web.Request) -> web.Response:
        room, session = self._resource(request)
        if not await self._live.remove_publication(room, session, "deleted by the publisher"):
            raise error(404, "no such publication")
        return web.Response(status=200)

    # -- WHEP: a viewer

    async def whep(self, request: web.Request) -> web.Response:
        node = request.app[NODE]
        rate_limit(request, node, "whep")
        room = _room(request)
        offer = await read_sdp(request, node)
        claims = authorize(request, node, "whep", TokenKind.VIEW, room, single_use=True)
        if not claims.session or not claims.device:
            # A view the controller could not revoke or audit by its session must not start.
            node.metrics.refused("whep", "incomplete")
            raise error(403, "the view token names no live-view session or device", "incomplete")
        live = self._live
        self._check_capacity(node)
        entry = live.relay_for(room)
        viewer_id = new_session_id()
        pc = live.peer_connection()
        try:
            # Phones' browsers name their host candidates `<uuid>.local`: aioice would spend up to a second on
            # multicast DNS for each before answering, and never resolve them from a data centre.
            await pc.setRemoteDescription(RTCSessionDescription(sdp=without_mdns_candidates(offer), type="offer"))
            if not any(t.kind == "video" for t in pc.getTransceivers()):
                raise error(400, "the offer has no video to receive")
            try:
                sink = live.attach_viewer(entry, viewer_id, pc)
            except RelayClosed as exc:
                node.metrics.full.inc()
                raise error(503, f"this camera cannot take more viewers now: {exc}") from None
            for transceiver in pc.getTransceivers():
                if getattr(transceiver.sender, "track", None) is None:  # aiortc types it as never None
                    transceiver.direction = "inactive"  # no audio on camera relays
            await pc.setLocalDescription(await pc.createAnswer())
        except web.HTTPException:
            entry.relay.remove_viewer(viewer_id)
            await close_pc(pc)
            raise
        except NEGOTIATION_ERRORS as exc:
            entry.relay.remove_viewer(viewer_id)
            await close_pc(pc)
            raise error(400, f"the SDP offer cannot be used: {exc}") from None
        viewer = Viewer(viewer_id, room, pc, sink, claims.session or "", claims.device or "", claims.subject)
        live.register_viewer(entry, viewer)
        node.metrics.sessions.labels("whep").inc()
        logger.info("relay %s: viewer %s joined (session %s)", room, viewer_id[:6], viewer.session or "-")
        return _answer(pc.localDescription.sdp, f"/whep/{room}/{viewer_id}")

    async def whep_delete(self, request: web.Request) -> web.Response:
        room, session = self._resource(request)
        if not await self._live.remove_viewer(room, session, "left"):
            raise error(404, "no such viewer session")
        return web.Response(status=200)

    # --

    def _check_capacity(self, node: NodeContext) -> None:
        if node.load().streams_out >= node.config.capacity_streams:
            node.metrics.full.inc()
            raise error(503, "this media node is full; ask the controller again", "full", {"Retry-After": "5"})

    @staticmethod
    def _resource(request: web.Request) -> tuple[str, str]:
        room = _room(request)
        session = request.match_info["session"]
        if not SESSION_ID.match(session):
            raise error(404, "no such session")
        return room, session


async def _preflight(request: web.Request) -> web.Response:
    # Reached only when the CORS middleware let the request through, which it does not for OPTIONS.
    raise error(403, "origin not allowed")
