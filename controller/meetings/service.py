"""From a join link to a seat in a meeting: check the link against the booking, check the entry window, place the
session on a media node (`controller.medianodes`), and sign a short-lived meeting token for that node.

The join link (controller.calendar.joinlinks) is the credential: anyone holding it enters as its role. The meeting
token lasts `media_token_ttl_s` (one minute by default): long enough to open the WebSocket, useless afterwards;
the page asks for a new one to reconnect. The token's subject is `join:<join link id>`, so a host's removal on
the node bars that link from the rest of the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from controller import state
from controller.bookings.drafts import BookingDetail, NotFound
from controller.bookings.models import BookingMode, Room
from controller.calendar.joinlinks import JoinClaims, Refused
from controller.medianodes import MEDIA_NODES, NodeState, NoMediaNode
from controller.meetings.window import Entry, SessionWindow, session_window
from controller.web.bookings_api import BOOKINGS
from controller.web.calendar_routes import JOIN_LINKS
from protocol.media import MEETING_WS_PATH, MeetingRole, TokenKind, meeting_room
from protocol.meeting import JoinInfo

CLASS_MODES = frozenset({BookingMode.CLASS, BookingMode.OBSERVATION})
"""Sessions run in class mode: students join muted and raise hands; observers are hidden."""


class MeetingRefused(Exception):
    """Why a join link does not open a meeting now: `reason` (a join-link reason, `too_early`, `over`,
    `no_media_node`) and the HTTP status."""

    def __init__(self, status: int, reason: str, message: str, window: SessionWindow | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.window = window


@dataclass(frozen=True)
class Admission:
    claims: JoinClaims
    detail: BookingDetail
    room: Room
    window: SessionWindow

    @property
    def room_name(self) -> str:
        """The media node's room for this occurrence."""
        return meeting_room(self.detail.booking.id, self.window.occurrence.id)

    @property
    def class_mode(self) -> bool:
        return self.detail.booking.mode in CLASS_MODES


def margin(app: web.Application) -> timedelta:
    return timedelta(minutes=app[state.CONFIG].meeting_entry_margin_minutes)


async def admit(app: web.Application, token: str) -> Admission:
    """The session a join link opens now, or `MeetingRefused` (a bad link, or outside the entry window)."""
    try:
        claims = app[JOIN_LINKS].verify(token)
    except Refused as refused:
        raise MeetingRefused(403, refused.reason.value, str(refused)) from None
    try:
        detail = await app[BOOKINGS].get(claims.booking_id)
    except NotFound:
        raise MeetingRefused(403, "wrong_booking", "the link is for a booking that does not exist") from None
    room_id = claims.room_id if claims.room_id is not None else detail.booking.host_room_id
    room = next((r for r in detail.rooms if r.id == room_id), None)
    if room is None:
        raise MeetingRefused(403, "wrong_booking", "the room is not in this booking")
    occurrences = list(detail.occurrences)
    if claims.occurrence_id is not None:
        occurrences = [occ for occ in occurrences if occ.id == claims.occurrence_id]
        if not occurrences:
            raise MeetingRefused(403, "wrong_booking", "the occurrence is not in this booking")
    window = session_window(occurrences, app[state.CLOCK].now(), margin(app))
    if window is None:
        raise MeetingRefused(403, "cancelled", "this session was cancelled")
    admission = Admission(claims, detail, room, window)
    if window.entry is Entry.TOO_EARLY:
        raise MeetingRefused(403, "too_early", "the session is not open yet", window)
    if window.entry is Entry.OVER:
        raise MeetingRefused(403, "over", "the session is over", window)
    return admission


def place(app: web.Application, admission: Admission) -> NodeState:
    """The media node carrying this session (placed now if it is not yet): 503 when none can take it."""
    streams = 2 * len(admission.detail.rooms)
    try:
        return app[MEDIA_NODES].registry.place(admission.room_name, streams)
    except NoMediaNode:
        raise MeetingRefused(
            503, "no_media_node", "no media node is available now: try again in a minute", admission.window
        ) from None


def ws_url(node: NodeState, room: str) -> str:
    parts = urlsplit(node.report.public_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + MEETING_WS_PATH.format(room=room)
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def node_origin(node: NodeState) -> str:
    """The node's WebSocket origin, for the page's Content-Security-Policy (connect-src)."""
    parts = urlsplit(ws_url(node, "x"))
    return f"{parts.scheme}://{parts.netloc}"


def display_name(admission: Admission, typed: str) -> str:
    typed = " ".join(typed.split())[:40]
    return f"{typed} · {admission.room.name}"[:80] if typed else admission.room.name[:80]


def join_info(app: web.Application, admission: Admission, node: NodeState, typed_name: str = "") -> JoinInfo:
    nodes = app[MEDIA_NODES]
    subject = f"join:{admission.claims.token_id}"
    role = MeetingRole(admission.claims.role.value)
    token = nodes.tokens.issue(
        kind=TokenKind.MEETING, node=node.node_id, room=admission.room_name, subject=subject,
        ttl=nodes.token_ttl, name=display_name(admission, typed_name), role=role,
        class_mode=admission.class_mode,
    )  # fmt: skip
    return JoinInfo(
        ws_url=ws_url(node, admission.room_name),
        token=token,
        ice_servers=nodes.ice_servers(subject),
        role=role,
        class_mode=admission.class_mode,
        expires_in_s=int(nodes.token_ttl.total_seconds()),
    )


def local(moment: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
