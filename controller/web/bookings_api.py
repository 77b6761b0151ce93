"""The rooms and bookings JSON API under /api. Errors are {"error": "..."} with a 4xx status.

Who may call what is the route's Policy (role and the unit of the room or booking in the path); which rooms a
request body names is checked by the service (controller.bookings.service). Times go out as UTC ISO 8601 plus
the same instant in the room's (or series') time zone as `*_local`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel

from controller import state
from controller.bookings import sqlite_create
from controller.bookings.answers import (
    AvailabilityOut,
    BookingOut,
    ListingOut,
    PolicyOut,
    RoomOut,
    RoomsOut,
)
from controller.bookings.availability import Hours
from controller.bookings.drafts import BookingDetail, BookingDraft, BookingError, Listed, RoomDraft
from controller.bookings.models import Occurrence, Room
from controller.bookings.policies import BOOKERS, ROOM_MANAGERS
from controller.bookings.schemas import (
    AvailabilityQuery,
    BookingIn,
    BookingPatch,
    OccurrencePatch,
    RangeQuery,
    RoomIn,
    RoomPatch,
    RoomPolicyIn,
)
from controller.bookings.service import BookingService
from controller.db import sqlite_writer
from controller.security.access import Kind, Policy, Routes, Scope, principal_of
from controller.web import jsonbody
from controller.web.errors import error

logger = logging.getLogger(__name__)

BOOKINGS: web.AppKey[BookingService] = web.AppKey("bookings", BookingService)
SQLITE_WRITER: web.AppKey[sqlite_writer.SqliteWriter] = web.AppKey("sqlite_writer", sqlite_writer.SqliteWriter)
_OFFSET_LOST = re.compile(r" (\d\d:?\d\d)$")
M = TypeVar("M", bound=BaseModel)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _body(request: web.Request, model: type[M]) -> M:
    return await jsonbody.parse_json(request, model)


def _query(model: type[M], values: Mapping[str, Any]) -> M:
    return jsonbody.parse_query(model, values)


def _restore_plus(value: str) -> str:
    """A '+' in a query string decodes to a space: '08:00:00 07:00' was '08:00:00+07:00'."""
    return _OFFSET_LOST.sub(r"+\1", value)


def _iso(moment: datetime, zone: ZoneInfo | None = None) -> str:
    return moment.astimezone(zone if zone is not None else UTC).isoformat()


def room_dict(room: Room) -> dict[str, Any]:
    return {
        "id": room.id,
        "unit_id": room.unit_id,
        "name": room.name,
        "equipment": list(room.equipment),
        "bandwidth_class": room.bandwidth_class.value,
        "active": room.active,
        "policy": policy_dict(room),
    }


def policy_dict(room: Room) -> dict[str, int]:
    return {
        "booking_window_days": room.booking_window_days,
        "max_duration_minutes": room.max_duration_minutes,
        "capacity": room.capacity,
    }


def _occurrence_dict(occurrence: Occurrence, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": occurrence.id,
        "recurrence_id": _iso(occurrence.recurrence_id),
        "start": _iso(occurrence.starts_at),
        "end": _iso(occurrence.ends_at),
        "start_local": _iso(occurrence.starts_at, zone),
        "end_local": _iso(occurrence.ends_at, zone),
        "cancelled": occurrence.cancelled,
        "detached": occurrence.detached,
    }


def booking_dict(detail: BookingDetail) -> dict[str, Any]:
    booking = detail.booking
    zone = ZoneInfo(booking.time_zone)
    return {
        "id": booking.id,
        "title": booking.title,
        "agenda": booking.agenda,
        "mode": booking.mode.value,
        "organizer_id": booking.organizer_id,
        "host_room": booking.host_room_id,
        "participant_rooms": [room.id for room in detail.rooms if room.id != booking.host_room_id],
        "rooms": [
            {"id": room.id, "name": room.name, "unit_id": room.unit_id, "host": room.id == booking.host_room_id}
            for room in detail.rooms
        ],
        "start": _iso(booking.starts_at),
        "end": _iso(booking.ends_at),
        "start_local": _iso(booking.starts_at, zone),
        "end_local": _iso(booking.ends_at, zone),
        "time_zone": booking.time_zone,
        "recurrence": None if booking.rrule is None else {"rule": booking.rrule, "exdates": list(booking.exdates)},
        "attendees": booking.attendees,
        "cancelled": booking.cancelled_at is not None,
        "occurrences": [_occurrence_dict(occurrence, zone) for occurrence in detail.occurrences],
    }


def _listed_dict(item: Listed, zones: Mapping[int, ZoneInfo]) -> dict[str, Any]:
    zone = zones.get(item.room.unit_id) or ZoneInfo(item.booking.time_zone)
    return {
        "booking_id": item.booking.id,
        "occurrence_id": item.occurrence.id,
        "title": item.booking.title,
        "mode": item.booking.mode.value,
        "room_id": item.room.id,
        "room_name": item.room.name,
        "host": item.room.id == item.booking.host_room_id,
        "start": _iso(item.occurrence.starts_at),
        "end": _iso(item.occurrence.ends_at),
        "start_local": _iso(item.occurrence.starts_at, zone),
        "end_local": _iso(item.occurrence.ends_at, zone),
    }


def _service(request: web.Request) -> BookingService:
    return request.app[BOOKINGS]


def _id(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


def _draft(body: BookingIn) -> BookingDraft:
    return BookingDraft(
        title=body.title,
        mode=body.mode,
        host_room_id=body.host_room,
        participant_room_ids=tuple(body.participant_rooms),
        starts_at=body.start,
        ends_at=body.end,
        agenda=body.agenda,
        attendees=body.attendees,
        rule=body.recurrence.rule if body.recurrence else None,
        exdates=tuple(body.recurrence.exdates) if body.recurrence else (),
    )


_PATCH_FIELDS = {
    "title": "title",
    "agenda": "agenda",
    "mode": "mode",
    "host_room": "host_room_id",
    "start": "starts_at",
    "end": "ends_at",
    "attendees": "attendees",
}


def _changes(body: BookingPatch) -> dict[str, Any]:
    changes: dict[str, Any] = {
        target: getattr(body, source) for source, target in _PATCH_FIELDS.items() if source in body.model_fields_set
    }
    if "participant_rooms" in body.model_fields_set and body.participant_rooms is not None:
        changes["participant_room_ids"] = tuple(body.participant_rooms)
    if "recurrence" in body.model_fields_set:
        changes["rule"] = body.recurrence.rule if body.recurrence else None
        changes["exdates"] = tuple(body.recurrence.exdates) if body.recurrence else ()
    return changes


async def _answer(request: web.Request, work: Callable[[], Awaitable[Any]], status: int = 200) -> web.StreamResponse:
    """Run `work()` (returning a JSON-able value); service and request errors become {"error"} answers."""
    try:
        return web.json_response(await work(), status=status)
    except BadRequest as exc:
        return error(exc.status, str(exc))
    except jsonbody.BodyError as exc:
        return error(exc.status, exc.message)
    except BookingError as exc:
        return error(exc.status, str(exc))


# ----- rooms -----


async def list_rooms(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        rooms = await _service(request).rooms_of(_id(request, "unit_id"))
        return {"rooms": [room_dict(room) for room in rooms]}

    return await _answer(request, work)


async def create_room(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        body = await _body(request, RoomIn)
        draft = RoomDraft(
            name=body.name,
            capacity=body.capacity,
            equipment=tuple(body.equipment),
            bandwidth_class=body.bandwidth_class,
            booking_window_days=body.booking_window_days,
            max_duration_minutes=body.max_duration_minutes,
            active=body.active,
        )
        room = await _service(request).create_room(
            principal_of(request), _id(request, "unit_id"), draft, request.remote
        )
        return room_dict(room)

    return await _answer(request, work, 201)


async def get_room(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        room, zone = await _service(request).room(_id(request, "room_id"))
        return {**room_dict(room), "time_zone": zone}

    return await _answer(request, work)


async def update_room(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        body = await _body(request, RoomPatch)
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        if not changes:
            raise BadRequest(422, "nothing to change")
        room = await _service(request).update_room(
            principal_of(request), _id(request, "room_id"), changes, request.remote
        )
        return room_dict(room)

    return await _answer(request, work)


async def get_policy(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        room, _zone = await _service(request).room(_id(request, "room_id"))
        return policy_dict(room)

    return await _answer(request, work)


async def put_policy(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        body = await _body(request, RoomPolicyIn)
        room = await _service(request).update_room(
            principal_of(request), _id(request, "room_id"), body.model_dump(), request.remote
        )
        return policy_dict(room)

    return await _answer(request, work)


async def _listing(request: web.Request, room_ids: list[int], zones: Mapping[int, ZoneInfo]) -> Any:
    query = _query(RangeQuery, {key: _restore_plus(value) for key, value in request.query.items()})
    items = await _service(request).occurrences(room_ids, query.start, query.end)
    return {"occurrences": [_listed_dict(item, zones) for item in items]}


async def room_bookings(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        room, zone = await _service(request).room(_id(request, "room_id"))
        return await _listing(request, [room.id], {room.unit_id: ZoneInfo(zone)})

    return await _answer(request, work)


async def unit_bookings(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        rooms = await _service(request).rooms_of(_id(request, "unit_id"))
        return await _listing(request, [room.id for room in rooms], {})

    return await _answer(request, work)


# ----- bookings -----


async def create_booking(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        body = await _body(request, BookingIn)
        detail = await _service(request).create(principal_of(request), _draft(body), request.remote)
        return booking_dict(detail)

    return await _answer(request, work, 201)


async def get_booking(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        return booking_dict(await _service(request).get(_id(request, "booking_id")))

    return await _answer(request, work)


async def update_booking(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        body = await _body(request, BookingPatch)
        detail = await _service(request).update_series(
            principal_of(request), _id(request, "booking_id"), _changes(body), request.remote
        )
        return booking_dict(detail)

    return await _answer(request, work)


async def cancel_booking(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        detail = await _service(request).cancel_series(
            principal_of(request), _id(request, "booking_id"), request.remote
        )
        return booking_dict(detail)

    return await _answer(request, work)


async def move_occurrence(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        body = await _body(request, OccurrencePatch)
        detail = await _service(request).move_occurrence(
            principal_of(request),
            _id(request, "booking_id"),
            _id(request, "occurrence_id"),
            body.start,
            body.end,
            request.remote,
        )
        return booking_dict(detail)

    return await _answer(request, work)


async def cancel_occurrence(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        detail = await _service(request).cancel_occurrence(
            principal_of(request), _id(request, "booking_id"), _id(request, "occurrence_id"), request.remote
        )
        return booking_dict(detail)

    return await _answer(request, work)


async def availability(request: web.Request) -> web.StreamResponse:
    async def work() -> Any:
        values: dict[str, Any] = dict(request.query)
        for name in ("rooms", "weekdays"):
            if name in values:
                values[name] = [part.strip() for part in values[name].split(",") if part.strip()]
        query = _query(AvailabilityQuery, values)
        hours = Hours(query.day_start, query.day_end, frozenset(query.weekdays))
        zone, slots = await _service(request).availability(
            principal_of(request), query.rooms, query.week, query.days, hours, timedelta(minutes=query.min_minutes)
        )
        return {
            "time_zone": zone.key,
            "rooms": query.rooms,
            "slots": [
                {"start": _iso(start), "end": _iso(end), "start_local": _iso(start, zone), "end_local": _iso(end, zone)}
                for start, end in slots
            ],
        }

    return await _answer(request, work)


async def _start_writer(app: web.Application) -> None:
    """on_startup, after the cleanup contexts: the database is migrated by then."""
    await app[SQLITE_WRITER].start()


async def warm(app: web.Application) -> None:
    """At start-up: the writer prepares the create's first statement (the rooms probe)."""
    writer = app.get(SQLITE_WRITER)
    if writer is not None:
        await writer.run(sqlite_create.warm)


async def _stop_writer(app: web.Application) -> None:
    await app[SQLITE_WRITER].close()


def setup(app: web.Application, routes: Routes) -> None:
    """The service (one per application: it owns the SQLite write serialisation) and the routes."""
    engine = app[state.ENGINE]
    writer = sqlite_writer.for_engine(engine)
    app[BOOKINGS] = BookingService(app[state.DB], app[state.CLOCK], engine.dialect.name, writer)
    if writer is not None:
        app[SQLITE_WRITER] = writer
        app.on_startup.append(_start_writer)
        app.on_cleanup.append(_stop_writer)
    # Rooms and bookings take no right away: their changes do not wake the live-view watcher (may_revoke).
    room = Policy(BOOKERS, Kind.API, Scope.ROOM, may_revoke=False)
    manage_room = Policy(ROOM_MANAGERS, Kind.API, Scope.ROOM, may_revoke=False)
    booking = Policy(BOOKERS, Kind.API, Scope.BOOKING, may_revoke=False)
    routes.add(
        "GET", "/api/units/{unit_id:\\d+}/rooms", list_rooms, Policy(BOOKERS, Kind.API, Scope.UNIT), response=RoomsOut
    )
    routes.add(
        "POST",
        "/api/units/{unit_id:\\d+}/rooms",
        create_room,
        Policy(ROOM_MANAGERS, Kind.API, Scope.UNIT, may_revoke=False),
        body=RoomIn,
        response=RoomOut,
    )
    routes.add(
        "GET",
        "/api/units/{unit_id:\\d+}/bookings",
        unit_bookings,
        Policy(BOOKERS, Kind.API, Scope.UNIT),
        query=RangeQuery,
        response=ListingOut,
    )
    routes.add("GET", "/api/rooms/{room_id:\\d+}", get_room, room, response=RoomOut)
    routes.add("PATCH", "/api/rooms/{room_id:\\d+}", update_room, manage_room, body=RoomPatch, response=RoomOut)
    routes.add("GET", "/api/rooms/{room_id:\\d+}/policy", get_policy, room, response=PolicyOut)
    routes.add(
        "PUT", "/api/rooms/{room_id:\\d+}/policy", put_policy, manage_room, body=RoomPolicyIn, response=PolicyOut
    )
    routes.add("GET", "/api/rooms/{room_id:\\d+}/bookings", room_bookings, room, query=RangeQuery, response=ListingOut)
    create = Policy(BOOKERS, may_revoke=False)
    routes.add("POST", "/api/bookings", create_booking, create, body=BookingIn, response=BookingOut)
    routes.add("GET", "/api/bookings/{booking_id:\\d+}", get_booking, booking, response=BookingOut)
    routes.add(
        "PATCH", "/api/bookings/{booking_id:\\d+}", update_booking, booking, body=BookingPatch, response=BookingOut
    )
    routes.add("POST", "/api/bookings/{booking_id:\\d+}/cancel", cancel_booking, booking, response=BookingOut)
    routes.add(
        "PATCH",
        "/api/bookings/{booking_id:\\d+}/occurrences/{occurrence_id:\\d+}",
        move_occurrence,
        booking,
        body=OccurrencePatch,
        response=BookingOut,
    )
    routes.add(
        "POST",
        "/api/bookings/{booking_id:\\d+}/occurrences/{occurrence_id:\\d+}/cancel",
        cancel_occurrence,
        booking,
        response=BookingOut,
    )
    routes.add(
        "GET", "/api/availability", availability, Policy(BOOKERS), query=AvailabilityQuery, response=AvailabilityOut
    )
