"""Checking roster rows, one kind at a time, against the database and the rows before them (see `importer`).

`RowChecks.check(row)` turns a row into a `Plan` (created, updated or unchanged, with the change to make) or
raises `BadRow` saying why the row is bad. Lookups are loaded once per run (`load`), so a 20,000-row file is
checked with dictionary look-ups, not a query per row.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.accounts import USERNAME
from controller.bookings.models import BandwidthClass, Room
from controller.db.models import DEFAULT_TIME_ZONE, Role, SchoolLevel, Unit, UnitKind, User
from controller.people.models import Child, ClassPlacement, Guardianship, SchoolClass
from controller.people.roster import RELATIONSHIPS, RosterError, check_school_year
from controller.people.tabular import Row

UNUSABLE_PASSWORD = "!imported"  # noqa: S105 (not a hash argon2 accepts: no password signs in until a reset)
STAFF_ROLES = {"school_staff": Role.SCHOOL_STAFF, "teacher": Role.TEACHER}
PARENT_KINDS = {
    UnitKind.DEPARTMENT: (),
    UnitKind.DISTRICT: (UnitKind.DEPARTMENT,),
    UnitKind.SCHOOL: (UnitKind.DEPARTMENT, UnitKind.DISTRICT),
}
DEFAULT_BOOKING_WINDOW_DAYS = 90
DEFAULT_MAX_DURATION_MINUTES = 240
_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")


class Kind(enum.StrEnum):
    UNITS = "units"
    ROOMS = "rooms"
    STAFF = "staff"
    CLASSES = "classes"
    CHILDREN = "children"
    GUARDIANS = "guardians"


COLUMNS: dict[Kind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Kind.UNITS: (("name", "kind"), ("parent", "level", "time_zone")),
    Kind.ROOMS: (("unit", "name", "capacity"), ("bandwidth_class", "equipment", "booking_window_days",
                                                "max_duration_minutes")),
    Kind.STAFF: (("username", "full_name", "role", "school"), ()),
    Kind.CLASSES: (("school", "school_year", "name"), ()),
    Kind.CHILDREN: (("school", "code", "full_name", "date_of_birth"), ("school_year", "class")),
    Kind.GUARDIANS: (("school", "child_code", "username", "relationship"), ("full_name",)),
}  # fmt: skip
"""Required and optional columns per kind."""


class BadRow(Exception):
    """One row is bad; the message says why."""


def _parse_date(value: str, today: date) -> date:
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        match = _DMY.match(value)
        if match is None:
            raise BadRow(f"bad date {value!r}: write YYYY-MM-DD or DD/MM/YYYY") from None
        try:
            parsed = date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
        except ValueError:
            raise BadRow(f"bad date {value!r}: no such day") from None
    if not date(1900, 1, 1) <= parsed <= today:
        raise BadRow(f"bad date {value!r}: not a date of birth")
    return parsed


def _int(value: str, what: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRow(f"{what} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise BadRow(f"{what} must be between {low} and {high}")
    return number


def _name(value: str, what: str, limit: int) -> str:
    value = " ".join(value.split())
    if len(value) > limit:
        raise BadRow(f"{what} is longer than {limit} characters")
    return value


class Units:
    """The units tree, with the units an import run adds (negative ids until applied)."""

    def __init__(self, units: list[Unit]) -> None:
        self.kind: dict[int, UnitKind] = {u.id: u.kind for u in units}
        self.by_id: dict[int, Unit] = {u.id: u for u in units}
        self.by_name: dict[str, list[int]] = {}
        for unit in units:
            self.by_name.setdefault(unit.name.casefold(), []).append(unit.id)

    def find(self, value: str, kinds: tuple[UnitKind, ...] = ()) -> int:
        """The unit named by `value` (an id or an exact name), of one of `kinds` if given."""
        value = " ".join(value.split())
        if value.isdigit():
            found = [int(value)] if int(value) in self.kind else []
        else:
            found = self.by_name.get(value.casefold(), [])
        if kinds:
            found = [unit_id for unit_id in found if self.kind[unit_id] in kinds]
        what = "/".join(k.value for k in kinds) or "unit"
        if not found:
            raise BadRow(f"unknown {what} {value!r}")
        if len(found) > 1:
            raise BadRow(f"more than one {what} is named {value!r}: give its id")
        return found[0]

    def add(self, key: int, name: str, kind: UnitKind) -> None:
        self.kind[key] = kind
        self.by_name.setdefault(name.casefold(), []).append(key)


@dataclass
class Plan:
    row: int
    action: str  # created, updated, unchanged (the Report counter it adds to)
    apply: Callable[[], Any] | None = None


class RowChecks:
    """One import run: preloaded lookups and the per-kind row checks; the plans they make are applied later."""

    def __init__(self, session: AsyncSession, kind: Kind, now: datetime) -> None:
        self.session, self.kind, self.now = session, kind, now
        self.today = now.date()
        self.plans: list[Plan] = []
        self.seen: dict[tuple[object, ...], int] = {}
        self.created_units: dict[int, int] = {}
        """Placeholder (minus the row number) -> the id of a unit this run created."""

    async def load(self, rows: list[Row]) -> None:
        units = list((await self.session.execute(select(Unit))).scalars())
        self.units = Units(units)
        schools = {u.id for u in units if u.kind is UnitKind.SCHOOL}
        self.classes: dict[tuple[int, str, str], SchoolClass] = {}
        self.children: dict[tuple[int, str], Child] = {}
        self.open_placements: dict[int, ClassPlacement] = {}
        self.users: dict[str, User] = {}
        if self.kind in (Kind.CLASSES, Kind.CHILDREN):
            for klass in (await self.session.execute(select(SchoolClass))).scalars():
                self.classes[(klass.unit_id, klass.school_year, klass.name.casefold())] = klass
        if self.kind in (Kind.CHILDREN, Kind.GUARDIANS):
            wanted = self._schools_named(rows) & schools
            for chunk in chunks(sorted(wanted), 500):
                for child in (await self.session.execute(select(Child).where(Child.unit_id.in_(chunk)))).scalars():
                    self.children[(child.unit_id, child.code.casefold())] = child
        if self.kind is Kind.CHILDREN:
            ids = [child.id for child in self.children.values()]
            for chunk in chunks(ids, 500):
                query = select(ClassPlacement).where(
                    ClassPlacement.child_id.in_(chunk), ClassPlacement.ended_at.is_(None)
                )
                for placement in (await self.session.execute(query)).scalars():
                    self.open_placements[placement.child_id] = placement
        if self.kind in (Kind.STAFF, Kind.GUARDIANS):
            names = sorted({row.values.get("username", "").strip().lower() for row in rows} - {""})
            for chunk in chunks(names, 500):
                for user in (await self.session.execute(select(User).where(User.username.in_(chunk)))).scalars():
                    self.users[user.username] = user
        if self.kind is Kind.ROOMS:
            self.rooms = {
                (r.unit_id, r.name.casefold()): r for r in (await self.session.execute(select(Room))).scalars()
            }

    def _schools_named(self, rows: list[Row]) -> set[int]:
        found: set[int] = set()
        for value in {row.values.get("school", "") for row in rows}:
            try:
                found.add(self.units.find(value, (UnitKind.SCHOOL,)))
            except BadRow:
                continue
        return found

    def once(self, key: tuple[object, ...], row: int) -> None:
        first = self.seen.setdefault(key, row)
        if first != row:
            raise BadRow(f"duplicate of row {first}")

    def check(self, row: Row) -> Plan:
        checks: dict[Kind, Callable[[Row], Plan]] = {
            Kind.UNITS: self._check_units,
            Kind.ROOMS: self._check_rooms,
            Kind.STAFF: self._check_staff,
            Kind.CLASSES: self._check_classes,
            Kind.CHILDREN: self._check_children,
            Kind.GUARDIANS: self._check_guardians,
        }
        return checks[self.kind](row)

    # -- units --------------------------------------------------------------------------------------------
    def _check_units(self, row: Row) -> Plan:
        v = row.values
        name = _name(v["name"], "name", 200)
        try:
            kind = UnitKind(v["kind"].lower())
        except ValueError:
            raise BadRow(f"unknown kind {v['kind']!r}: {', '.join(k.value for k in UnitKind)}") from None
        parent = self.units.find(v["parent"], PARENT_KINDS[kind]) if v.get("parent") else None
        if parent is None and kind is not UnitKind.DEPARTMENT:
            raise BadRow(f"missing field parent: a {kind.value} needs one")
        level = None
        if v.get("level"):
            try:
                level = SchoolLevel(v["level"].lower())
            except ValueError:
                raise BadRow(f"unknown level {v['level']!r}: {', '.join(lv.value for lv in SchoolLevel)}") from None
            if kind is not UnitKind.SCHOOL:
                raise BadRow("only schools have a level")
        zone = v.get("time_zone") or DEFAULT_TIME_ZONE
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadRow(f"unknown time zone {zone!r}") from None
        self.once(("unit", name.casefold(), parent), row.number)
        existing = [
            uid for uid in self.units.by_name.get(name.casefold(), [])
            if uid > 0 and self.units.by_id[uid].parent_id == parent and self.units.kind[uid] is kind
        ]  # fmt: skip
        if existing:
            unit = self.units.by_id[existing[0]]
            if unit.school_level == level and unit.time_zone == zone:
                return Plan(row.number, "unchanged")

            def update() -> None:
                unit.school_level, unit.time_zone = level, zone

            return Plan(row.number, "updated", update)
        placeholder = -row.number
        self.units.add(placeholder, name, kind)
        created = self.created_units

        async def create() -> None:
            real_parent = created.get(parent, parent) if parent is not None and parent < 0 else parent
            unit = Unit(
                name=name, kind=kind, parent_id=real_parent, school_level=level, time_zone=zone,
                camera_networks=[], created_at=self.now,
            )  # fmt: skip
            self.session.add(unit)
            await self.session.flush()
            created[placeholder] = unit.id

        return Plan(row.number, "created", create)

    # -- rooms --------------------------------------------------------------------------------------------
    def _check_rooms(self, row: Row) -> Plan:
        v = row.values
        unit_id = self.units.find(v["unit"])
        name = _name(v["name"], "name", 200)
        capacity = _int(v["capacity"], "capacity", 1, 100_000)
        try:
            bandwidth = BandwidthClass((v.get("bandwidth_class") or "medium").lower())
        except ValueError:
            raise BadRow(f"bandwidth_class is one of {', '.join(b.value for b in BandwidthClass)}") from None
        equipment = [item.strip() for item in (v.get("equipment") or "").split(";") if item.strip()]
        window = _int(v.get("booking_window_days") or str(DEFAULT_BOOKING_WINDOW_DAYS), "booking_window_days", 1, 730)
        longest = _int(
            v.get("max_duration_minutes") or str(DEFAULT_MAX_DURATION_MINUTES), "max_duration_minutes", 5, 1440
        )
        self.once(("room", unit_id, name.casefold()), row.number)
        room = self.rooms.get((unit_id, name.casefold()))
        wanted = (capacity, equipment, bandwidth, window, longest)
        if room is not None:
            have = (room.capacity, list(room.equipment), room.bandwidth_class, room.booking_window_days,
                    room.max_duration_minutes)  # fmt: skip
            if have == wanted:
                return Plan(row.number, "unchanged")

            def update() -> None:
                (room.capacity, room.equipment, room.bandwidth_class, room.booking_window_days,
                 room.max_duration_minutes) = wanted  # fmt: skip
                room.updated_at = self.now

            return Plan(row.number, "updated", update)

        def create() -> None:
            self.session.add(
                Room(
                    unit_id=unit_id, name=name, capacity=capacity, equipment=equipment, bandwidth_class=bandwidth,
                    booking_window_days=window, max_duration_minutes=longest, active=True, created_at=self.now,
                    updated_at=self.now,
                )
            )  # fmt: skip

        return Plan(row.number, "created", create)

    # -- accounts (staff, guardians) ----------------------------------------------------------------------
    def _account(self, row: Row, role: Role, unit_id: int, full_name: str) -> tuple[str, Plan | None]:
        username = row.values["username"].strip().lower()
        if not USERNAME.match(username):
            raise BadRow(f"bad username {username!r}: 2-64 lower-case letters, digits, dot, dash, underscore")
        user = self.users.get(username)
        if user is None:

            def create() -> None:
                new = User(
                    username=username, display_name=full_name or username, password_hash=UNUSABLE_PASSWORD,
                    role=role, unit_id=unit_id, created_at=self.now,
                )  # fmt: skip
                self.session.add(new)
                self.users[username] = new

            placeholder = User(username=username, role=role, unit_id=unit_id, display_name=full_name)
            self.users[username] = placeholder
            return username, Plan(row.number, "created", create)
        if user.role is not role or (role is not Role.PARENT and user.unit_id != unit_id):
            raise BadRow(f"the username {username!r} belongs to another account ({user.role.value})")
        if full_name and user.display_name != full_name and user.id is not None:

            def rename() -> None:
                user.display_name = full_name

            return username, Plan(row.number, "updated", rename)
        return username, None

    def _check_staff(self, row: Row) -> Plan:
        v = row.values
        role = STAFF_ROLES.get(v["role"].lower())
        if role is None:
            raise BadRow(f"role is one of {', '.join(STAFF_ROLES)}, not {v['role']!r}")
        school = self.units.find(v["school"], (UnitKind.SCHOOL,))
        full_name = _name(v["full_name"], "full_name", 200)
        self.once(("user", v["username"].strip().lower()), row.number)
        _, plan = self._account(row, role, school, full_name)
        return plan or Plan(row.number, "unchanged")

    # -- classes ------------------------------------------------------------------------------------------
    def _year(self, value: str) -> str:
        try:
            return check_school_year(value)
        except RosterError as exc:
            raise BadRow(str(exc)) from None

    def _check_classes(self, row: Row) -> Plan:
        v = row.values
        school = self.units.find(v["school"], (UnitKind.SCHOOL,))
        year, name = self._year(v["school_year"]), _name(v["name"], "name", 100)
        key = (school, year, name.casefold())
        self.once(("class", *key), row.number)
        if key in self.classes:
            return Plan(row.number, "unchanged")

        def create() -> None:
            klass = SchoolClass(unit_id=school, school_year=year, name=name, created_at=self.now)
            self.session.add(klass)
            self.classes[key] = klass

        return Plan(row.number, "created", create)

    # -- children -----------------------------------------------------------------------------------------
    def _check_children(self, row: Row) -> Plan:
        v = row.values
        school = self.units.find(v["school"], (UnitKind.SCHOOL,))
        code, full_name = _name(v["code"], "code", 64), _name(v["full_name"], "full_name", 200)
        born = _parse_date(v["date_of_birth"], self.today)
        klass: SchoolClass | None = None
        if v.get("class"):
            if not v.get("school_year"):
                raise BadRow("missing field school_year (a class is named within a school year)")
            year = self._year(v["school_year"])
            klass = self.classes.get((school, year, _name(v["class"], "class", 100).casefold()))
            if klass is None:
                raise BadRow(f"unknown class {v['class']!r} ({year}) in this school: import the classes first")
        self.once(("child", school, code.casefold()), row.number)
        child = self.children.get((school, code.casefold()))
        if child is None:

            def create() -> Child:
                new = Child(
                    unit_id=school, code=code, full_name=full_name, date_of_birth=born,
                    class_id=klass.id if klass else None, created_at=self.now,
                )  # fmt: skip
                self.session.add(new)
                return new

            return Plan(row.number, "created", create)
        class_id = klass.id if klass else None
        if (child.full_name, child.date_of_birth, child.class_id) == (full_name, born, class_id):
            return Plan(row.number, "unchanged")

        def update() -> None:
            child.full_name, child.date_of_birth = full_name, born
            if child.class_id != class_id:
                placement = self.open_placements.get(child.id)
                if placement is not None:
                    placement.ended_at = self.now
                if class_id is not None:
                    self.session.add(ClassPlacement(child_id=child.id, class_id=class_id, started_at=self.now))
                child.class_id = class_id

        return Plan(row.number, "updated", update)

    # -- guardians ----------------------------------------------------------------------------------------
    def _check_guardians(self, row: Row) -> Plan:
        v = row.values
        school = self.units.find(v["school"], (UnitKind.SCHOOL,))
        child = self.children.get((school, " ".join(v["child_code"].split()).casefold()))
        if child is None:
            raise BadRow(f"unknown child {v['child_code']!r} in this school: import the children first")
        relationship = v["relationship"].lower()
        if relationship not in RELATIONSHIPS:
            raise BadRow(f"relationship is one of {', '.join(RELATIONSHIPS)}, not {v['relationship']!r}")
        full_name = _name(v.get("full_name", ""), "full_name", 200)
        username = v["username"].strip().lower()
        self.once(("guardian", child.id, username), row.number)
        first_row_of_user = ("user", username) not in self.seen
        self.seen.setdefault(("user", username), row.number)
        _, account = self._account(row, Role.PARENT, school, full_name if first_row_of_user else "")
        user = self.users[username]
        link = self.links.get((child.id, user.id)) if user.id is not None else None
        if link is not None and link.relationship == relationship and link.revoked_at is None and account is None:
            return Plan(row.number, "unchanged")

        def apply() -> None:
            if account is not None and account.apply is not None:
                account.apply()
            target = self.users[username]
            if link is None:
                self.pending_links.append((child.id, target, relationship))
            else:
                link.relationship, link.revoked_at = relationship, None

        return Plan(row.number, "created" if link is None else "updated", apply)

    async def load_links(self) -> None:
        self.links: dict[tuple[int, int], Guardianship] = {}
        self.pending_links: list[tuple[int, User, str]] = []
        ids = [child.id for child in self.children.values()]
        for chunk in chunks(ids, 500):
            for link in (
                await self.session.execute(select(Guardianship).where(Guardianship.child_id.in_(chunk)))
            ).scalars():
                self.links[(link.child_id, link.user_id)] = link


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
