"""Administration pages for the units tree and its rooms: create and edit units (name, school level, time zone)
and rooms (capacity, equipment, bandwidth class of the site's link, booking window, longest booking, in use).

Administrators see and change every unit; district technicians their district's schools (`bookings.places`).
Rooms go through the bookings service, so the pages check, validate and audit exactly as the API does; a
refused form is shown again with what was typed and the reason above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from pydantic import ValidationError

from controller import state
from controller.bookings import places
from controller.bookings.drafts import BookingError, RoomDraft
from controller.bookings.messages import localized
from controller.bookings.models import BandwidthClass, Room
from controller.bookings.schemas import RoomIn
from controller.db.models import DEFAULT_TIME_ZONE, SchoolLevel, Unit, UnitKind
from controller.security.access import TECHNICIANS, Kind, Policy, Routes, Scope, principal_of
from controller.web import views
from controller.web.bookings_api import BOOKINGS
from controller.web.i18n import language, translate
from controller.web.jsonbody import explain


@dataclass(frozen=True)
class TreeRow:
    unit: Unit
    depth: int


def _tree(units: list[Unit]) -> list[TreeRow]:
    """Units in tree order (each after its parent), with their depth among the units shown."""
    ids = {unit.id for unit in units}
    children: dict[int | None, list[Unit]] = {}
    for unit in units:
        parent = unit.parent_id if unit.parent_id in ids else None
        children.setdefault(parent, []).append(unit)
    rows: list[TreeRow] = []

    def walk(parent: int | None, depth: int) -> None:
        for unit in sorted(children.get(parent, []), key=lambda u: (u.name, u.id)):
            rows.append(TreeRow(unit, depth))
            walk(unit.id, depth + 1)

    walk(None, 0)
    return rows


def _text(form: MultiDictProxy[Any], name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    return value[:limit].strip() if isinstance(value, str) else ""


def _level(raw: str) -> SchoolLevel | None:
    return SchoolLevel(raw) if raw in {level.value for level in SchoolLevel} else None


def _t(request: web.Request, key: str) -> str:
    return translate(key, language(request))


def _error(request: web.Request, exc: BookingError) -> str:
    return localized(exc, language(request))


# ----- units -----


async def units_page(request: web.Request, *, status: int = 200, **extra: Any) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        units = await views.visible_units(session, principal_of(request))
    context: dict[str, Any] = {"error": None, "form": {"time_zone": DEFAULT_TIME_ZONE}, **extra}
    return request.app[state.RENDERER].render(
        request,
        "admin_units.html",
        status=status,
        rows=_tree(units),
        parents=[unit for unit in units if unit.kind is not UnitKind.SCHOOL],
        kinds=list(UnitKind),
        levels=list(SchoolLevel),
        **context,
    )


async def units_list(request: web.Request) -> web.StreamResponse:
    return await units_page(request)


async def unit_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {name: _text(form, name) for name in ("name", "kind", "parent_id", "school_level", "time_zone")}
    if values["kind"] not in {kind.value for kind in UnitKind}:
        return await units_page(request, status=422, error=_t(request, "unit_kind_needed"), form=values)
    parent = values["parent_id"]
    draft = places.UnitDraft(
        name=values["name"],
        kind=UnitKind(values["kind"]),
        parent_id=int(parent) if parent.isdigit() and len(parent) < 10 else None,
        school_level=_level(values["school_level"]),
        time_zone=values["time_zone"] or DEFAULT_TIME_ZONE,
    )
    now = request.app[state.CLOCK].now()
    try:
        async with request.app[state.DB].begin() as session:
            unit = await places.create(session, principal_of(request), draft, now, request.remote)
    except BookingError as exc:
        return await units_page(request, status=exc.status, error=_error(request, exc), form=values)
    raise web.HTTPSeeOther(f"/admin/units/{unit.id}?saved=1")


async def unit_page(request: web.Request, *, status: int = 200, **extra: Any) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    async with request.app[state.DB]() as session:
        unit = await session.get(Unit, unit_id)
    if unit is None:
        raise web.HTTPNotFound()
    rooms = await request.app[BOOKINGS].rooms_of(unit_id)
    context: dict[str, Any] = {"error": None, "room_error": None, "room_form": _blank_room(), **extra}
    return request.app[state.RENDERER].render(
        request,
        "admin_unit.html",
        status=status,
        unit=unit,
        rooms=rooms,
        levels=list(SchoolLevel),
        bandwidths=list(BandwidthClass),
        saved=request.query.get("saved") == "1",
        **context,
    )


async def unit_page_get(request: web.Request) -> web.StreamResponse:
    return await unit_page(request)


async def unit_update(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    form = await request.post()
    now = request.app[state.CLOCK].now()
    try:
        async with request.app[state.DB].begin() as session:
            await places.update(
                session,
                principal_of(request),
                unit_id,
                name=_text(form, "name"),
                school_level=_level(_text(form, "school_level")),
                time_zone=_text(form, "time_zone", 64),
                now=now,
                address=request.remote,
            )
    except BookingError as exc:
        return await unit_page(request, status=exc.status, error=_error(request, exc))
    raise web.HTTPSeeOther(f"/admin/units/{unit_id}?saved=1")


# ----- rooms -----


def _blank_room() -> dict[str, Any]:
    return {
        "name": "",
        "capacity": "30",
        "equipment": "",
        "bandwidth_class": BandwidthClass.MEDIUM.value,
        "booking_window_days": "90",
        "max_duration_minutes": "240",
        "active": True,
    }


def _room_values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: _text(form, name, 2000 if name == "equipment" else 200) for name in _blank_room() if name != "active"
    }
    values["active"] = form.get("active") == "on"
    return values


def _room_draft(values: dict[str, Any]) -> RoomDraft:
    """The form's room, validated by the API's own model (lax: numbers come as text); ValidationError if bad."""
    equipment = [part.strip() for part in values["equipment"].replace(";", ",").split(",") if part.strip()]
    body = RoomIn.model_validate(
        {
            "name": values["name"],
            "capacity": values["capacity"],
            "equipment": equipment,
            "bandwidth_class": values["bandwidth_class"],
            "booking_window_days": values["booking_window_days"],
            "max_duration_minutes": values["max_duration_minutes"],
            "active": values["active"],
        },
        strict=False,
    )
    return RoomDraft(
        name=body.name,
        capacity=body.capacity,
        equipment=tuple(body.equipment),
        bandwidth_class=body.bandwidth_class,
        booking_window_days=body.booking_window_days,
        max_duration_minutes=body.max_duration_minutes,
        active=body.active,
    )


async def room_create(request: web.Request) -> web.StreamResponse:
    unit_id = int(request.match_info["unit_id"])
    values = _room_values(await request.post())
    try:
        draft = _room_draft(values)
        room = await request.app[BOOKINGS].create_room(principal_of(request), unit_id, draft, request.remote)
    except ValidationError as exc:
        return await unit_page(request, status=422, room_error=explain(exc), room_form=values)
    except BookingError as exc:
        return await unit_page(request, status=exc.status, room_error=_error(request, exc), room_form=values)
    raise web.HTTPSeeOther(f"/admin/rooms/{room.id}?saved=1")


def _room_form(room: Room) -> dict[str, Any]:
    return {
        "name": room.name,
        "capacity": str(room.capacity),
        "equipment": ", ".join(room.equipment),
        "bandwidth_class": room.bandwidth_class.value,
        "booking_window_days": str(room.booking_window_days),
        "max_duration_minutes": str(room.max_duration_minutes),
        "active": room.active,
    }


async def room_page(
    request: web.Request, *, status: int = 200, form: dict[str, Any] | None = None, error: str | None = None
) -> web.StreamResponse:
    try:
        room, zone = await request.app[BOOKINGS].room(int(request.match_info["room_id"]))
    except BookingError as exc:
        raise web.HTTPNotFound() from exc
    async with request.app[state.DB]() as session:
        unit = await session.get(Unit, room.unit_id)
    return request.app[state.RENDERER].render(
        request,
        "admin_room.html",
        status=status,
        room=room,
        unit=unit,
        zone=zone,
        form=form or _room_form(room),
        error=error,
        bandwidths=list(BandwidthClass),
        saved=request.query.get("saved") == "1",
    )


async def room_page_get(request: web.Request) -> web.StreamResponse:
    return await room_page(request)


async def room_update(request: web.Request) -> web.StreamResponse:
    room_id = int(request.match_info["room_id"])
    values = _room_values(await request.post())
    try:
        draft = _room_draft(values)
        changes = {
            "name": draft.name,
            "capacity": draft.capacity,
            "equipment": draft.equipment,
            "bandwidth_class": draft.bandwidth_class,
            "booking_window_days": draft.booking_window_days,
            "max_duration_minutes": draft.max_duration_minutes,
            "active": draft.active,
        }
        await request.app[BOOKINGS].update_room(principal_of(request), room_id, changes, request.remote)
    except ValidationError as exc:
        return await room_page(request, status=422, form=values, error=explain(exc))
    except BookingError as exc:
        return await room_page(request, status=exc.status, form=values, error=_error(request, exc))
    raise web.HTTPSeeOther(f"/admin/rooms/{room_id}?saved=1")


def add_routes(routes: Routes) -> None:
    page = Kind.PAGE
    routes.add("GET", "/admin/units", units_list, Policy(TECHNICIANS, page))
    routes.add("POST", "/admin/units", unit_create, Policy(TECHNICIANS, page))
    unit = Policy(TECHNICIANS, page, Scope.UNIT)
    routes.add("GET", "/admin/units/{unit_id:\\d+}", unit_page_get, unit)
    routes.add("POST", "/admin/units/{unit_id:\\d+}", unit_update, unit)
    routes.add("POST", "/admin/units/{unit_id:\\d+}/rooms", room_create, unit)
    room = Policy(TECHNICIANS, page, Scope.ROOM)
    routes.add("GET", "/admin/rooms/{room_id:\\d+}", room_page_get, room)
    routes.add("POST", "/admin/rooms/{room_id:\\d+}", room_update, room)
