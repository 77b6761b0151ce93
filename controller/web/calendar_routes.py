"""Join links and iCalendar: the join page, the join-link and invitation API, and the room and user feeds.

- `GET /join/{token}`: public; the token is the credential (controller.calendar.joinlinks). The page says which
  session, when (in the room's unit time zone), as what role, or why the link is refused.
- `GET /api/bookings/{id}/join-links?role=...&room=...&occurrence=...`: whoever may edit the booking.
- `GET /api/bookings/{id}/invitation.ics?room=...&role=...`: METHOD:REQUEST with the join link.
- `GET /calendar/rooms/{id}.ics`, `GET /calendar/users/me.ics`: feeds, API policy (session cookie or an API
  token as `Authorization: Bearer`), so a calendar client authenticates with an API token.
Join tokens travel in the path: aiohttp's access log gets a filter that blanks them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web
from icalendar import Calendar
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller import state
from controller.bookings.drafts import BookingDetail, BookingError, NotFound
from controller.bookings.models import Booking, BookingRoom, Occurrence, Room
from controller.bookings.policies import BOOKERS, may_book
from controller.calendar import feedtokens, ics
from controller.calendar.answers import FeedTokenRevokedOut, FeedUrlsOut, JoinLinksOut, JoinLinksQuery
from controller.calendar.joinlinks import JoinClaims, JoinLinks, JoinRole, Reason, Refused
from controller.db.models import AuditEntry, Role, User
from controller.security.access import Kind, Policy, Routes, Scope, in_scope, principal_of, public
from controller.security.sessions import Principal
from controller.units import is_within, parents
from controller.web.bookings_api import BOOKINGS
from controller.web.errors import error
from controller.web.i18n import language

logger = logging.getLogger(__name__)

JOIN_LINKS: web.AppKey[JoinLinks] = web.AppKey("join_links", JoinLinks)
JoinHook = Callable[[web.Request, str], Awaitable[web.StreamResponse | None]]
JOIN_HOOK: web.AppKey[JoinHook] = web.AppKey("join_hook")
"""Set by controller.meetings: the meeting page while the link's session is open (None: show the join page)."""
FEED_HISTORY = timedelta(days=31)
"""Feeds carry bookings with an occurrence ending at most this long ago (and everything later)."""
ICS_TYPE = "text/calendar"
_TOKEN_IN_PATH = re.compile(r"/(join|calendar/feeds)/[^\s/?\"]+")

TEXT: dict[str, tuple[str, str]] = {
    "title": ("Tham gia buổi họp", "Join the session"),
    "session": ("Buổi", "Session"),
    "when": ("Thời gian", "When"),
    "zone": ("Múi giờ", "Time zone"),
    "role": ("Vai trò", "Role"),
    "room": ("Phòng", "Room"),
    "opens": (
        "Phòng họp trực tuyến sẽ mở vào giờ của buổi. Hãy quay lại liên kết này khi đến giờ.",
        "The online meeting opens at its time. Come back to this link then.",
    ),
    "over": ("Buổi này đã kết thúc.", "This session is over."),
    "series": ("Cả chuỗi buổi, buổi tiếp theo:", "The whole series, next session:"),
    "refused": ("Liên kết không dùng được", "This link cannot be used"),
    "host": ("Chủ trì", "Host"),
    "presenter": ("Người trình bày", "Presenter"),
    "participant": ("Người tham dự", "Participant"),
    "observer": ("Người dự giờ", "Observer"),
    Reason.EXPIRED: ("Liên kết đã hết hạn.", "The link has expired."),
    Reason.NOT_YET_VALID: (
        "Liên kết chưa có hiệu lực: hãy mở lại gần giờ bắt đầu.",
        "The link is not valid yet: open it again close to the start.",
    ),
    Reason.TAMPERED: (
        "Liên kết bị hỏng hoặc không do hệ thống này tạo ra.",
        "The link is damaged or was not made by this server.",
    ),
    Reason.WRONG_BOOKING: (
        "Liên kết không thuộc buổi họp này (buổi đã đổi hoặc bị xoá).",
        "The link does not belong to this booking (it was changed or removed).",
    ),
    Reason.CANCELLED: ("Buổi này đã bị huỷ.", "This session was cancelled."),
}


def _t(key: str, lang: str) -> str:
    pair = TEXT[key]
    return pair[1] if lang == "en" else pair[0]


class _RedactJoinTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_PATH.sub(r"/\1/…", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_PATH.sub(r"/\1/…", record.msg)
        return True


def _domain(request: web.Request) -> str:
    return urlsplit(request.app[state.CONFIG].effective_public_url).hostname or "ketnoi"


def _join_url(request: web.Request, token: str) -> str:
    return f"{request.app[state.CONFIG].effective_public_url.rstrip('/')}/join/{token}"


# ----- join page -----


def _check_claims(claims: JoinClaims, detail: BookingDetail) -> tuple[Room, list[Occurrence]]:
    """The room and the occurrences the link is for; Refused when they are not this booking's."""
    room_id = claims.room_id if claims.room_id is not None else detail.booking.host_room_id
    room = next((r for r in detail.rooms if r.id == room_id), None)
    if room is None:
        raise Refused(Reason.WRONG_BOOKING, "the room is not in this booking")
    if claims.occurrence_id is None:
        chosen = list(detail.occurrences)
    else:
        chosen = [occ for occ in detail.occurrences if occ.id == claims.occurrence_id]
        if not chosen:
            raise Refused(Reason.WRONG_BOOKING, "the occurrence is not in this booking")
    live = [occ for occ in chosen if not occ.cancelled]
    if not live:
        raise Refused(Reason.CANCELLED, "cancelled")
    return room, live


async def join_page(request: web.Request) -> web.StreamResponse:
    hook = request.app.get(JOIN_HOOK)
    if hook is not None:
        opened = await hook(request, request.match_info["token"])
        if opened is not None:
            return opened
    lang = language(request)
    links = request.app[JOIN_LINKS]
    renderer = request.app[state.RENDERER]
    texts = {key: _t(key, lang) for key in TEXT if not isinstance(key, Reason)}
    try:
        claims = links.verify(request.match_info["token"])
        try:
            detail = await request.app[BOOKINGS].get(claims.booking_id)
        except NotFound as exc:
            raise Refused(Reason.WRONG_BOOKING, "no such booking") from exc
        room, live = _check_claims(claims, detail)
    except Refused as refused:
        return renderer.render(
            request, "join.html", status=403, texts=texts, reason=refused.reason.value, why=_t(refused.reason, lang),
            session=None,
        )  # fmt: skip
    zone = ZoneInfo(detail.time_zones.get(room.unit_id, detail.booking.time_zone))
    now = request.app[state.CLOCK].now()
    upcoming = [occ for occ in live if occ.ends_at > now]
    first = (upcoming or live[-1:])[0]
    session = {
        "title": detail.booking.title,
        "room": room.name,
        "role": _t(claims.role.value, lang),
        "role_code": claims.role.value,
        "series": claims.occurrence_id is None,
        "start": first.starts_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "end": first.ends_at.astimezone(zone).strftime("%H:%M"),
        "zone": zone.key,
        "over": not upcoming,
    }
    return renderer.render(request, "join.html", texts=texts, reason="", why="", session=session)


# ----- join links and invitations -----


async def _may_edit(session: AsyncSession, principal: Principal, booking: Booking, rooms: list[Room]) -> bool:
    """The service's rule for changing a booking: organizer, admin, department booker, host school staff or the
    district's technician."""
    if principal.role in (Role.ADMIN, Role.DEPARTMENT_BOOKER) or principal.user_id == booking.organizer_id:
        return True
    if principal.role in (Role.SCHOOL_STAFF, Role.DISTRICT_TECHNICIAN) and rooms:
        tree = await parents(session) if principal.role is Role.DISTRICT_TECHNICIAN else {}
        return may_book(principal, tree, rooms[0].unit_id)
    return False


class _Bad(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _ints(request: web.Request, name: str) -> list[int]:
    values = request.query.getall(name, [])
    try:
        return [int(value) for part in values for value in part.split(",") if value]
    except ValueError as exc:
        raise _Bad(422, f"{name}: give room ids as whole numbers") from exc


def _roles(request: web.Request) -> list[JoinRole]:
    values = [value for part in request.query.getall("role", []) for value in part.split(",") if value]
    try:
        return [JoinRole(value) for value in values]
    except ValueError as exc:
        allowed = ", ".join(role.value for role in JoinRole)
        raise _Bad(422, f"role: one of {allowed}") from exc


async def _editable_detail(request: web.Request) -> BookingDetail:
    booking_id = int(request.match_info["booking_id"])
    try:
        detail = await request.app[BOOKINGS].get(booking_id)
    except BookingError as exc:
        raise _Bad(exc.status, str(exc)) from exc
    async with request.app[state.DB]() as session:
        if not await _may_edit(session, principal_of(request), detail.booking, detail.rooms):
            raise _Bad(403, "only whoever may change this booking gets its join links")
    if detail.booking.cancelled_at is not None:
        raise _Bad(409, "this booking is cancelled")
    return detail


def _window(detail: BookingDetail, occurrence_id: int | None) -> tuple[datetime, datetime]:
    live = [occ for occ in detail.occurrences if not occ.cancelled]
    if occurrence_id is not None:
        live = [occ for occ in live if occ.id == occurrence_id]
        if not live:
            raise _Bad(404, "no such live occurrence of this booking")
    if not live:
        raise _Bad(409, "this booking has no live occurrence")
    return min(occ.starts_at for occ in live), max(occ.ends_at for occ in live)


def _links(request: web.Request, detail: BookingDetail) -> list[dict[str, Any]]:
    occurrence = request.query.get("occurrence")
    if occurrence is not None and not (occurrence.isascii() and occurrence.isdigit()):
        raise _Bad(422, "occurrence: an occurrence id")
    occurrence_id = int(occurrence) if occurrence is not None else None
    starts, ends = _window(detail, occurrence_id)
    rooms = {room.id: room for room in detail.rooms}
    wanted = _ints(request, "room") or list(rooms)
    unknown = [str(room_id) for room_id in wanted if room_id not in rooms]
    if unknown:
        raise _Bad(422, f"room: not in this booking: {', '.join(unknown)}")
    roles = _roles(request)
    links = []
    for room_id in wanted:
        default = JoinRole.HOST if room_id == detail.booking.host_room_id else JoinRole.PARTICIPANT
        for role in roles or [default]:
            token = request.app[JOIN_LINKS].issue(
                booking_id=detail.booking.id, occurrence_id=occurrence_id, starts_at=starts, ends_at=ends,
                role=role, room_id=room_id,
            )  # fmt: skip
            links.append(
                {
                    "room": room_id,
                    "room_name": rooms[room_id].name,
                    "role": role.value,
                    "occurrence": occurrence_id if occurrence_id is not None else "series",
                    "url": _join_url(request, token),
                    "not_before": (starts - request.app[JOIN_LINKS].early).isoformat(),
                    "expires": (ends + request.app[JOIN_LINKS].late).isoformat(),
                }
            )
    return links


async def join_links(request: web.Request) -> web.StreamResponse:
    try:
        detail = await _editable_detail(request)
        return web.json_response({"booking": detail.booking.id, "links": _links(request, detail)})
    except _Bad as exc:
        return error(exc.status, str(exc))


async def _sequences(session: AsyncSession, booking_ids: list[int]) -> dict[int, int]:
    """Changes audited per booking after its creation (SEQUENCE)."""
    if not booking_ids:
        return {}
    targets = {f"booking:{booking_id}": booking_id for booking_id in booking_ids}
    query = (
        select(AuditEntry.target, func.count())
        .where(AuditEntry.target.in_(list(targets)), AuditEntry.action.like("booking.%"))
        .group_by(AuditEntry.target)
    )
    rows = (await session.execute(query)).all()
    return {targets[target]: max(count - 1, 0) for target, count in rows}


def _ics_response(calendar: Calendar, filename: str) -> web.Response:
    return web.Response(
        body=calendar.to_ical(),
        headers={
            "Content-Type": f"{ICS_TYPE}; charset=utf-8",
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


async def invitation(request: web.Request) -> web.StreamResponse:
    try:
        detail = await _editable_detail(request)
        if len(_ints(request, "room")) > 1 or len(_roles(request)) > 1:
            raise _Bad(422, "an invitation is for one room and one role")
        link = _links(request, detail)[0]
    except _Bad as exc:
        return error(exc.status, str(exc))
    async with request.app[state.DB]() as session:
        organizer = await session.get(User, detail.booking.organizer_id)
        sequence = (await _sequences(session, [detail.booking.id])).get(detail.booking.id, 0)
    name = organizer.display_name or organizer.username if organizer else "ketnoi"
    username = organizer.username if organizer else "organizer"
    description = f"Tham gia / Join ({link['role']}, {link['room_name']}): {link['url']}"
    extra = ics.Extra(
        url=link["url"], description=description, organizer=f"mailto:{username}@{_domain(request)}",
        organizer_name=name,
    )  # fmt: skip
    events = ics.events_of(
        detail, sequence=sequence, stamp=request.app[state.CLOCK].now(), domain=_domain(request), extra=extra
    )
    calendar = ics.calendar(events, name=detail.booking.title, method="REQUEST")
    return _ics_response(calendar, f"booking-{detail.booking.id}.ics")


# ----- feeds -----


async def _feed(request: web.Request, booking_ids: list[int], name: str, filename: str) -> web.StreamResponse:
    service = request.app[BOOKINGS]
    async with request.app[state.DB]() as session:
        sequences = await _sequences(session, booking_ids)
    stamp = request.app[state.CLOCK].now()
    events = []
    for booking_id in sorted(booking_ids):
        detail = await service.get(booking_id)
        sequence = sequences.get(booking_id, 0)
        events += ics.events_of(detail, sequence=sequence, stamp=stamp, domain=_domain(request))
    return _ics_response(ics.calendar(events, name=name), filename)


def _recent(now: datetime) -> Any:
    recent = select(Occurrence.booking_id).where(Occurrence.ends_at >= now - FEED_HISTORY)
    return Booking.id.in_(recent)


async def room_feed(request: web.Request) -> web.StreamResponse:
    return await _room_feed(request, None)


async def _room_feed(request: web.Request, principal: Principal | None) -> web.StreamResponse:
    """The room's feed; `principal` (a feed token's user) is checked for scope here, a session by its policy."""
    room_id = int(request.match_info["room_id"])
    now = request.app[state.CLOCK].now()
    async with request.app[state.DB]() as session:
        room = await session.get(Room, room_id)
        if principal is not None and (room is None or not await in_scope(session, principal, room.unit_id)):
            return error(403, "this room is not in your scope")
        if room is None:
            return error(404, "no such room")
        query = (
            select(Booking.id)
            .join(BookingRoom, BookingRoom.booking_id == Booking.id)
            .where(BookingRoom.room_id == room_id, _recent(now))
        )
        ids = list((await session.execute(query)).scalars())
    return await _feed(request, ids, room.name, f"room-{room_id}.ics")


async def user_feed(request: web.Request) -> web.StreamResponse:
    return await _user_feed(request, principal_of(request))


async def _user_feed(request: web.Request, principal: Principal) -> web.StreamResponse:
    now = request.app[state.CLOCK].now()
    async with request.app[state.DB]() as session:
        rows = (await session.execute(select(Room.id, Room.unit_id))).all()
        if principal.role is Role.ADMIN:
            scoped = [room_id for room_id, _unit in rows]
        elif principal.unit_id is None:
            scoped = []
        else:
            tree = await parents(session)
            scoped = [room_id for room_id, unit in rows if is_within(tree, unit, principal.unit_id)]
        in_scope = select(BookingRoom.booking_id).where(BookingRoom.room_id.in_(scoped))
        query = select(Booking.id).where(
            or_(Booking.organizer_id == principal.user_id, Booking.id.in_(in_scope)), _recent(now)
        )
        ids = list((await session.execute(query)).scalars())
    return await _feed(request, ids, f"ketnoi: {principal.username}", "me.ics")


# ----- feed tokens -----


def _feed_urls(request: web.Request, secret: str) -> dict[str, str]:
    base = f"{request.app[state.CONFIG].effective_public_url.rstrip('/')}/calendar/feeds/{secret}"
    return {"user_feed": f"{base}/me.ics", "room_feed": f"{base}/rooms/{{room_id}}.ics"}


async def make_feed_token(request: web.Request) -> web.StreamResponse:
    """A new calendar feed token for the caller (the previous one stops working); shown once."""
    principal = principal_of(request)
    async with request.app[state.DB].begin() as session:
        secret = await feedtokens.rotate(session, principal.user_id, request.app[state.CLOCK].now())
    logger.info("calendar feed token made for %s", principal.username)
    return web.json_response(_feed_urls(request, secret), status=201)


async def revoke_feed_token(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    async with request.app[state.DB].begin() as session:
        revoked = await feedtokens.revoke(session, principal.user_id)
    return web.json_response({"revoked": revoked})


async def _token_principal(request: web.Request) -> Principal | None:
    async with request.app[state.DB].begin() as session:
        return await feedtokens.resolve(session, request.match_info["token"], request.app[state.CLOCK].now())


async def token_user_feed(request: web.Request) -> web.StreamResponse:
    principal = await _token_principal(request)
    if principal is None:
        return error(401, "unknown or revoked calendar feed token")
    return await _user_feed(request, principal)


async def token_room_feed(request: web.Request) -> web.StreamResponse:
    principal = await _token_principal(request)
    if principal is None:
        return error(401, "unknown or revoked calendar feed token")
    return await _room_feed(request, principal)


def setup(app: web.Application, routes: Routes) -> None:
    app[JOIN_LINKS] = JoinLinks(app[state.SECRET_KEY], app[state.CLOCK])
    logging.getLogger("aiohttp.access").addFilter(_RedactJoinTokens())
    editors = Policy(BOOKERS, Kind.API, Scope.BOOKING)
    routes.add("GET", "/join/{token}", join_page, public(Kind.PAGE))
    routes.add(
        "GET",
        "/api/bookings/{booking_id:\\d+}/join-links",
        join_links,
        editors,
        query=JoinLinksQuery,
        response=JoinLinksOut,
    )
    routes.add("GET", "/api/bookings/{booking_id:\\d+}/invitation.ics", invitation, editors)
    routes.add("GET", "/calendar/rooms/{room_id:\\d+}.ics", room_feed, Policy(BOOKERS, Kind.API, Scope.ROOM))
    routes.add("GET", "/calendar/users/me.ics", user_feed, Policy(BOOKERS, Kind.API))
    routes.add("POST", "/api/calendar/feed-token", make_feed_token, Policy(BOOKERS), response=FeedUrlsOut)
    routes.add(
        "POST", "/api/calendar/feed-token/revoke", revoke_feed_token, Policy(BOOKERS), response=FeedTokenRevokedOut
    )
    # Authenticated by the feed token in the path (controller.calendar.feedtokens), not by a session.
    routes.add("GET", "/calendar/feeds/{token}/me.ics", token_user_feed, public())
    routes.add("GET", "/calendar/feeds/{token}/rooms/{room_id:\\d+}.ics", token_room_feed, public())
