"""The booking pages: a week calendar per room and per unit, the booking form, a booking with cancel, my sessions,
and the parents' page listing their children.

Server-rendered forms only (no script: the Content-Security-Policy allows none). Times are shown and typed in the
room's unit time zone. The service (controller.bookings.service) checks which rooms the caller may book; the route
policies check the room, unit or booking in the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select

from controller import state
from controller.bookings.drafts import BookingDetail, BookingDraft, BookingError, Conflict, Listed
from controller.bookings.messages import Text, localized
from controller.bookings.models import BookingMode, Room
from controller.bookings.policies import BOOKERS, may_book
from controller.bookings.service import BookingService
from controller.db.models import Role, Unit
from controller.people import roster
from controller.security.access import Kind, Policy, Routes, Scope, principal_of
from controller.security.sessions import Principal
from controller.units import parents
from controller.web.bookings_api import BOOKINGS
from controller.web.i18n import language, translate

DEFAULT_ZONE = "Asia/Ho_Chi_Minh"
UPCOMING = timedelta(days=14)
MAX_COUNT = 200
LANDING = {
    Role.ADMIN: "/",
    Role.DISTRICT_TECHNICIAN: "/",
    Role.DEPARTMENT_BOOKER: "/my/sessions",
    Role.SCHOOL_STAFF: "/my/sessions",
    Role.TEACHER: "/my/sessions",
    Role.PARENT: "/my/children",
}


def landing(role: Role) -> str:
    """Where a role goes after signing in: a page it may see."""
    return LANDING.get(role, "/my/sessions")


@dataclass(frozen=True)
class RoomChoice:
    id: int
    name: str
    unit_id: int
    unit_name: str
    time_zone: str


@dataclass(frozen=True)
class Entry:
    booking_id: int
    occurrence_id: int
    title: str
    mode: str
    room_name: str
    host: bool
    day: date
    start: str
    end: str


def _service(request: web.Request) -> BookingService:
    return request.app[BOOKINGS]


async def bookable_rooms(request: web.Request, principal: Principal) -> list[RoomChoice]:
    """The active rooms the caller may book, by unit and name."""
    async with request.app[state.DB]() as session:
        rows = (
            await session.execute(
                select(Room, Unit.name, Unit.time_zone)
                .join(Unit, Unit.id == Room.unit_id)
                .where(Room.active.is_(True))
                .order_by(Unit.name, Room.name, Room.id)
            )
        ).all()
        tree = await parents(session) if principal.role is Role.DISTRICT_TECHNICIAN else {}
    return [
        RoomChoice(room.id, room.name, room.unit_id, unit_name, zone or DEFAULT_ZONE)
        for room, unit_name, zone in rows
        if may_book(principal, tree, room.unit_id)
    ]


def _monday(request: web.Request, zone: ZoneInfo, now: datetime) -> date:
    raw = request.query.get("start", "")
    try:
        day = date.fromisoformat(raw) if raw else now.astimezone(zone).date()
    except ValueError:
        day = now.astimezone(zone).date()
    return day - timedelta(days=day.weekday())


def _entries(items: list[Listed], zone: ZoneInfo) -> list[Entry]:
    found = []
    for item in items:
        start = item.occurrence.starts_at.astimezone(zone)
        end = item.occurrence.ends_at.astimezone(zone)
        found.append(
            Entry(
                item.booking.id,
                item.occurrence.id,
                item.booking.title,
                item.booking.mode.value,
                item.room.name,
                item.room.id == item.booking.host_room_id,
                start.date(),
                f"{start:%H:%M}",
                f"{end:%H:%M}",
            )
        )
    return found


async def _week(request: web.Request, *, title: str, rooms: list[Room], zone_name: str, **context: Any) -> web.Response:
    zone = ZoneInfo(zone_name or DEFAULT_ZONE)
    monday = _monday(request, zone, request.app[state.CLOCK].now())
    start = datetime.combine(monday, time(), zone)
    end = datetime.combine(monday + timedelta(days=7), time(), zone)
    items = await _service(request).occurrences([room.id for room in rooms], start, end) if rooms else []
    entries = _entries(items, zone)
    days = [(monday + timedelta(days=i), [e for e in entries if e.day == monday + timedelta(days=i)]) for i in range(7)]
    return request.app[state.RENDERER].render(
        request,
        "week.html",
        title=title,
        days=days,
        monday=monday,
        previous=(monday - timedelta(days=7)).isoformat(),
        next=(monday + timedelta(days=7)).isoformat(),
        today=request.app[state.CLOCK].now().astimezone(zone).date(),
        zone=zone.key,
        **context,
    )


async def room_week(request: web.Request) -> web.StreamResponse:
    try:
        room, zone = await _service(request).room(int(request.match_info["room_id"]))
    except BookingError as exc:
        raise web.HTTPNotFound() from exc
    async with request.app[state.DB]() as session:
        unit = await session.get(Unit, room.unit_id)
    unit_name = unit.name if unit else ""
    return await _week(
        request, title=f"{room.name} · {unit_name}", rooms=[room], zone_name=zone, room=room, unit_id=room.unit_id
    )


async def unit_week(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    async with request.app[state.DB]() as session:
        unit = await session.get(Unit, unit_id)
    if unit is None:
        raise web.HTTPNotFound()
    rooms = await _service(request).rooms_of(unit_id)
    return await _week(request, title=unit.name, rooms=rooms, zone_name=unit.time_zone, room=None, unit_id=unit_id)


# ----- the booking form -----


def _blank_form(room: str, today: date) -> dict[str, Any]:
    return {
        "title": "",
        "agenda": "",
        "mode": BookingMode.MEETING.value,
        "host_room": room,
        "participant_rooms": [],
        "date": today.isoformat(),
        "start_time": "08:00",
        "end_time": "09:00",
        "repeat": "none",
        "count": "",
        "until": "",
    }


async def _form(
    request: web.Request,
    values: dict[str, Any],
    *,
    error: str | None = None,
    status: int = 200,
    refused: bool = False,
    edit: BookingDetail | None = None,
) -> web.Response:
    rooms = await bookable_rooms(request, principal_of(request))
    extra: dict[str, Any] = {"editing": False}
    if edit is not None:
        rooms = _with_held(rooms, edit)
        extra = {"editing": True, "action": f"/bookings/{edit.booking.id}/edit", "heading": "edit_series"}
    return request.app[state.RENDERER].render(
        request,
        "booking_form.html",
        status=status,
        rooms=rooms,
        form=values,
        error=error,
        refused=refused,
        modes=list(BookingMode),
        **extra,
    )


def _with_held(rooms: list[RoomChoice], detail: BookingDetail) -> list[RoomChoice]:
    """The rooms the caller may book plus those the booking holds already (whoever may edit it keeps them)."""
    known = {room.id for room in rooms}
    held = [
        RoomChoice(room.id, room.name, room.unit_id, "", detail.time_zones.get(room.unit_id, DEFAULT_ZONE))
        for room in detail.rooms
        if room.id not in known
    ]
    return [*rooms, *held]


async def new_booking(request: web.Request) -> web.StreamResponse:
    today = request.app[state.CLOCK].now().astimezone(ZoneInfo(DEFAULT_ZONE)).date()
    values = _blank_form(request.query.get("room", ""), today)
    if request.query.get("date"):
        values["date"] = request.query["date"][:10]
    return await _form(request, values)


class FormError(ValueError):
    pass


def _rule(values: dict[str, Any]) -> str | None:
    repeat = values["repeat"]
    if repeat == "none":
        return None
    if repeat not in ("daily", "weekly"):
        raise FormError("repeat")
    if values["count"]:
        try:
            count = int(values["count"])
        except ValueError as exc:
            raise FormError("bad_count") from exc
        if not 1 <= count <= MAX_COUNT:
            raise FormError("bad_count")
        return f"FREQ={repeat.upper()};COUNT={count}"
    if values["until"]:
        try:
            until = date.fromisoformat(values["until"])
        except ValueError as exc:
            raise FormError("bad_until") from exc
        return f"FREQ={repeat.upper()};UNTIL={until:%Y%m%d}"
    raise FormError("count_or_until")


def _draft(values: dict[str, Any], zones: dict[int, str]) -> BookingDraft:
    if not values["title"].strip():
        raise FormError("need_title")
    try:
        host = int(values["host_room"])
        participants = tuple(int(v) for v in values["participant_rooms"] if int(v) != host)
    except ValueError as exc:
        raise FormError("need_host") from exc
    if host not in zones:
        raise FormError("need_host")
    zone = ZoneInfo(zones[host])
    try:
        day = date.fromisoformat(values["date"])
        starts = datetime.combine(day, time.fromisoformat(values["start_time"]), zone)
        ends = datetime.combine(day, time.fromisoformat(values["end_time"]), zone)
    except ValueError as exc:
        raise FormError("bad_time") from exc
    if ends <= starts:
        raise FormError("end_before_start")
    try:
        mode = BookingMode(values["mode"])
    except ValueError as exc:
        raise FormError("need_mode") from exc
    return BookingDraft(
        title=values["title"].strip(),
        mode=mode,
        host_room_id=host,
        participant_room_ids=participants,
        starts_at=starts,
        ends_at=ends,
        agenda=values["agenda"],
        rule=_rule(values),
    )


def _posted(form: MultiDictProxy[Any]) -> dict[str, Any]:
    return {
        "title": str(form.get("title", ""))[:200],
        "agenda": str(form.get("agenda", ""))[:4000],
        "mode": str(form.get("mode", "")),
        "host_room": str(form.get("host_room", "")),
        "participant_rooms": [str(v) for v in form.getall("participant_rooms", [])][:500],
        "date": str(form.get("date", ""))[:10],
        "start_time": str(form.get("start_time", ""))[:8],
        "end_time": str(form.get("end_time", ""))[:8],
        "repeat": str(form.get("repeat", "none")),
        "count": str(form.get("count", "")).strip()[:6],
        "until": str(form.get("until", ""))[:10],
    }


async def create_booking(request: web.Request) -> web.StreamResponse:
    values = _posted(await request.post())
    principal = principal_of(request)
    rooms = await bookable_rooms(request, principal)
    lang_error: str | None = None
    try:
        draft = _draft(values, {room.id: room.time_zone for room in rooms})
    except FormError as exc:
        lang_error = f"form_{exc}"
        return await _form(request, values, error=lang_error, status=422)
    try:
        detail = await _service(request).create(principal, draft, request.remote)
    except BookingError as exc:
        return await _form(request, values, error=localized(exc, language(request)), status=exc.status, refused=True)
    raise web.HTTPSeeOther(f"/bookings/{detail.booking.id}?created=1")


# ----- one booking -----


async def booking_page_get(request: web.Request) -> web.StreamResponse:
    return await booking_page(request)


async def booking_page(request: web.Request, *, status: int = 200, error: str | None = None) -> web.StreamResponse:
    try:
        detail = await _service(request).get(int(request.match_info["booking_id"]))
    except BookingError as exc:
        raise web.HTTPNotFound() from exc
    zone = ZoneInfo(detail.booking.time_zone)
    now = request.app[state.CLOCK].now()
    occurrences = [
        {
            "id": o.id,
            "day": o.starts_at.astimezone(zone).date(),
            "start": f"{o.starts_at.astimezone(zone):%H:%M}",
            "end": f"{o.ends_at.astimezone(zone):%H:%M}",
            "cancelled": o.cancelled,
            "moved": o.detached,
            "past": o.starts_at < now,
        }
        for o in sorted(detail.occurrences, key=lambda o: o.starts_at)
    ]
    return request.app[state.RENDERER].render(
        request,
        "booking.html",
        status=status,
        error=error,
        updated=request.query.get("updated") == "1",
        booking=detail.booking,
        rooms=detail.rooms,
        occurrences=occurrences,
        zone=zone.key,
        created=request.query.get("created") == "1",
        first_day=detail.booking.starts_at.astimezone(zone).date().isoformat(),
    )


def _message(request: web.Request, message: str, status: int) -> web.Response:
    return request.app[state.RENDERER].render(request, "message.html", status=status, message=message)


async def cancel_booking(request: web.Request) -> web.StreamResponse:
    booking_id = int(request.match_info["booking_id"])
    try:
        await _service(request).cancel_series(principal_of(request), booking_id, request.remote)
    except BookingError as exc:
        return _message(request, localized(exc, language(request)), exc.status)
    raise web.HTTPSeeOther(f"/bookings/{booking_id}")


async def cancel_occurrence(request: web.Request) -> web.StreamResponse:
    booking_id = int(request.match_info["booking_id"])
    try:
        await _service(request).cancel_occurrence(
            principal_of(request), booking_id, int(request.match_info["occurrence_id"]), request.remote
        )
    except BookingError as exc:
        return _message(request, localized(exc, language(request)), exc.status)
    raise web.HTTPSeeOther(f"/bookings/{booking_id}")


# ----- editing the series, moving one occurrence -----


def _edit_values(detail: BookingDetail) -> dict[str, Any]:
    booking = detail.booking
    zone = ZoneInfo(booking.time_zone)
    start, end = booking.starts_at.astimezone(zone), booking.ends_at.astimezone(zone)
    return {
        "title": booking.title,
        "agenda": booking.agenda,
        "mode": booking.mode.value,
        "host_room": str(booking.host_room_id),
        "participant_rooms": [str(room.id) for room in detail.rooms if room.id != booking.host_room_id],
        "date": start.date().isoformat(),
        "start_time": f"{start:%H:%M}",
        "end_time": f"{end:%H:%M}",
        "repeat": "keep" if booking.rrule else "none",
        "rule": booking.rrule or "",
        "count": "",
        "until": "",
    }


async def _editable(request: web.Request) -> BookingDetail:
    try:
        detail = await _service(request).get(int(request.match_info["booking_id"]))
    except BookingError as exc:
        raise web.HTTPNotFound() from exc
    return detail


async def edit_booking_form(request: web.Request) -> web.StreamResponse:
    detail = await _editable(request)
    if detail.booking.cancelled_at is not None:
        return _message(request, localized(Conflict(Text("booking_cancelled")), language(request)), 409)
    return await _form(request, _edit_values(detail), edit=detail)


async def edit_booking(request: web.Request) -> web.StreamResponse:
    """The whole series from the form; 'keep' leaves the stored rule (and its exception dates) as it is."""
    detail = await _editable(request)
    values = {**_posted(await request.post()), "rule": detail.booking.rrule or ""}
    principal = principal_of(request)
    rooms = _with_held(await bookable_rooms(request, principal), detail)
    keep = values["repeat"] == "keep" and detail.booking.rrule is not None
    try:
        draft = _draft({**values, "repeat": "none"} if keep else values, {room.id: room.time_zone for room in rooms})
    except FormError as exc:
        return await _form(request, values, error=f"form_{exc}", status=422, edit=detail)
    changes: dict[str, Any] = {
        "title": draft.title,
        "agenda": draft.agenda,
        "mode": draft.mode,
        "host_room_id": draft.host_room_id,
        "participant_room_ids": draft.participant_room_ids,
        "starts_at": draft.starts_at,
        "ends_at": draft.ends_at,
    }
    if not keep:
        changes["rule"] = draft.rule
        if draft.rule is None:
            changes["exdates"] = ()
    try:
        await _service(request).update_series(principal, detail.booking.id, changes, request.remote)
    except BookingError as exc:
        error = localized(exc, language(request))
        return await _form(request, values, error=error, status=exc.status, refused=True, edit=detail)
    raise web.HTTPSeeOther(f"/bookings/{detail.booking.id}?updated=1")


async def move_occurrence(request: web.Request) -> web.StreamResponse:
    """One occurrence to another day or time (in the series' time zone), conflict-checked like a booking."""
    booking_id = int(request.match_info["booking_id"])
    detail = await _editable(request)
    zone = ZoneInfo(detail.booking.time_zone)
    form = await request.post()
    try:
        day = date.fromisoformat(str(form.get("date", ""))[:10])
        starts = datetime.combine(day, time.fromisoformat(str(form.get("start_time", ""))[:8]), zone)
        ends = datetime.combine(day, time.fromisoformat(str(form.get("end_time", ""))[:8]), zone)
    except ValueError:
        return await booking_page(request, status=422, error=translate("form_bad_time", language(request)))
    if ends <= starts:
        return await booking_page(request, status=422, error=translate("form_end_before_start", language(request)))
    try:
        await _service(request).move_occurrence(
            principal_of(request), booking_id, int(request.match_info["occurrence_id"]), starts, ends, request.remote
        )
    except BookingError as exc:
        return await booking_page(request, status=exc.status, error=localized(exc, language(request)))
    raise web.HTTPSeeOther(f"/bookings/{booking_id}?updated=1")


# ----- my sessions, my children -----


async def my_sessions(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    rooms = await bookable_rooms(request, principal)
    now = request.app[state.CLOCK].now()
    zone = ZoneInfo(DEFAULT_ZONE)
    items = await _service(request).occurrences([room.id for room in rooms], now, now + UPCOMING) if rooms else []
    seen: set[int] = set()
    upcoming: list[Listed] = []
    for item in items:
        if item.occurrence.id not in seen:
            seen.add(item.occurrence.id)
            upcoming.append(item)
    return request.app[state.RENDERER].render(
        request,
        "my_sessions.html",
        entries=_entries(upcoming, zone),
        mine={item.occurrence.id for item in upcoming if item.booking.organizer_id == principal.user_id},
        rooms=rooms,
        units=sorted({(room.unit_id, room.unit_name) for room in rooms}, key=lambda pair: pair[1]),
    )


async def my_children(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        found = await roster.children_of_parent(session, principal_of(request).user_id)
    children = [roster.child_dict(child) for child in found]
    return request.app[state.RENDERER].render(request, "my_children.html", children=children)


def add_routes(routes: Routes) -> None:
    page = Policy(BOOKERS, Kind.PAGE)
    routes.add("GET", "/rooms/{room_id:\\d+}/week", room_week, Policy(BOOKERS, Kind.PAGE, Scope.ROOM))
    routes.add("GET", "/units/{unit_id:\\d+}/week", unit_week, Policy(BOOKERS, Kind.PAGE, Scope.UNIT))
    routes.add("GET", "/bookings/new", new_booking, page)
    routes.add("POST", "/bookings", create_booking, page)
    booking = Policy(BOOKERS, Kind.PAGE, Scope.BOOKING)
    routes.add("GET", "/bookings/{booking_id:\\d+}", booking_page_get, booking)
    routes.add("GET", "/bookings/{booking_id:\\d+}/edit", edit_booking_form, booking)
    routes.add("POST", "/bookings/{booking_id:\\d+}/edit", edit_booking, booking)
    routes.add("POST", "/bookings/{booking_id:\\d+}/occurrences/{occurrence_id:\\d+}/move", move_occurrence, booking)
    routes.add("POST", "/bookings/{booking_id:\\d+}/cancel", cancel_booking, booking)
    routes.add(
        "POST", "/bookings/{booking_id:\\d+}/occurrences/{occurrence_id:\\d+}/cancel", cancel_occurrence, booking
    )
    routes.add("GET", "/my/sessions", my_sessions, page)
    routes.add("GET", "/my/children", my_children, Policy(frozenset({Role.PARENT}), Kind.PAGE))
