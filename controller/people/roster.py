"""Classes, children, guardians, consent records and class staff: the facts the parent live view (#6)
authorizes on. Every change is audited in the caller's transaction.

Moving a child closes its open placement and opens one in the new class (history kept); `Child.class_id` is
always the class of the open placement. A guardianship is revoked, never deleted; a consent is withdrawn,
never deleted.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import Role, Unit, UnitKind, User
from controller.people.models import Child, ClassPlacement, ClassStaff, Consent, Guardianship, SchoolClass
from controller.people.users import Actor, record

logger = logging.getLogger(__name__)

SCHOOL_YEAR = re.compile(r"^(\d{4})-(\d{4})$")
RELATIONSHIPS = ("mother", "father", "guardian", "grandparent", "other")
STAFF_ROLES = frozenset({Role.SCHOOL_STAFF, Role.TEACHER})


class RosterError(ValueError):
    """The change is not possible; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_school_year(value: str) -> str:
    match = SCHOOL_YEAR.match(value.strip())
    if match is None or int(match.group(2)) != int(match.group(1)) + 1:
        raise RosterError("a school year is written YYYY-YYYY, the second year after the first (2025-2026)")
    return value.strip()


def check_name(value: str, what: str, limit: int) -> str:
    value = " ".join(value.split())
    if not 1 <= len(value) <= limit:
        raise RosterError(f"{what} needs 1 to {limit} characters")
    return value


async def school(session: AsyncSession, unit_id: int) -> Unit:
    unit = await session.get(Unit, unit_id)
    if unit is None:
        raise RosterError("no such unit", 404)
    if unit.kind is not UnitKind.SCHOOL:
        raise RosterError("classes and children belong to a school")
    return unit


async def create_class(
    session: AsyncSession, actor: Actor, unit_id: int, *, school_year: str, name: str
) -> SchoolClass:
    await school(session, unit_id)
    year, name = check_school_year(school_year), check_name(name, "a class name", 100)
    existing = await session.execute(
        select(SchoolClass.id).where(
            SchoolClass.unit_id == unit_id, SchoolClass.school_year == year, SchoolClass.name == name
        )
    )
    if existing.first() is not None:
        raise RosterError(f"the class {name} ({year}) exists already", 409)
    klass = SchoolClass(unit_id=unit_id, school_year=year, name=name, created_at=actor.now)
    session.add(klass)
    await session.flush()
    record(session, actor, "class.create", f"class:{klass.id}", unit_id=unit_id, school_year=year, name=name)
    return klass


async def classes_of(session: AsyncSession, unit_id: int) -> list[SchoolClass]:
    query = select(SchoolClass).where(SchoolClass.unit_id == unit_id)
    return list((await session.execute(query.order_by(SchoolClass.school_year.desc(), SchoolClass.name))).scalars())


async def get_class(session: AsyncSession, class_id: int) -> SchoolClass:
    klass = await session.get(SchoolClass, class_id)
    if klass is None:
        raise RosterError("no such class", 404)
    return klass


async def children_of_class(session: AsyncSession, class_id: int) -> list[Child]:
    query = select(Child).where(Child.class_id == class_id).order_by(Child.full_name, Child.id)
    return list((await session.execute(query)).scalars())


async def get_child(session: AsyncSession, child_id: int) -> Child:
    child = await session.get(Child, child_id)
    if child is None:
        raise RosterError("no such child", 404)
    return child


async def _class_of_school(session: AsyncSession, class_id: int | None, unit_id: int) -> int | None:
    if class_id is None:
        return None
    klass = await session.get(SchoolClass, class_id)
    if klass is None or klass.unit_id != unit_id:
        raise RosterError("that class is not a class of this school")
    return klass.id


async def create_child(
    session: AsyncSession,
    actor: Actor,
    unit_id: int,
    *,
    code: str,
    full_name: str,
    date_of_birth: date,
    class_id: int | None,
) -> Child:
    await school(session, unit_id)
    code, full_name = check_name(code, "a pupil code", 64), check_name(full_name, "a name", 200)
    taken = await session.execute(select(Child.id).where(Child.unit_id == unit_id, Child.code == code))
    if taken.first() is not None:
        raise RosterError(f"the pupil code {code} is taken in this school", 409)
    class_id = await _class_of_school(session, class_id, unit_id)
    child = Child(
        unit_id=unit_id, code=code, full_name=full_name, date_of_birth=date_of_birth, class_id=class_id,
        created_at=actor.now,
    )  # fmt: skip
    session.add(child)
    await session.flush()
    if class_id is not None:
        session.add(ClassPlacement(child_id=child.id, class_id=class_id, started_at=actor.now))
    record(session, actor, "child.create", f"child:{child.id}", unit_id=unit_id, class_id=class_id)
    return child


def place(
    session: AsyncSession, child: Child, class_id: int | None, now: datetime, open_placement: ClassPlacement | None
) -> None:
    """Close the open placement (if any) and open one in `class_id` (if any): the one place a class changes."""
    if open_placement is not None:
        open_placement.ended_at = now
    if class_id is not None:
        session.add(ClassPlacement(child_id=child.id, class_id=class_id, started_at=now))
    child.class_id = class_id


async def open_placement(session: AsyncSession, child_id: int) -> ClassPlacement | None:
    query = select(ClassPlacement).where(ClassPlacement.child_id == child_id, ClassPlacement.ended_at.is_(None))
    return (await session.execute(query)).scalars().first()


async def move_child(session: AsyncSession, actor: Actor, child_id: int, class_id: int | None) -> Child:
    child = await get_child(session, child_id)
    class_id = await _class_of_school(session, class_id, child.unit_id)
    if class_id == child.class_id:
        return child
    before = child.class_id
    place(session, child, class_id, actor.now, await open_placement(session, child.id))
    record(session, actor, "child.move", f"child:{child.id}", from_class=before, to_class=class_id)
    return child


async def placements(session: AsyncSession, child_id: int) -> list[ClassPlacement]:
    query = select(ClassPlacement).where(ClassPlacement.child_id == child_id)
    return list((await session.execute(query.order_by(ClassPlacement.started_at, ClassPlacement.id))).scalars())


async def link_guardian(
    session: AsyncSession, actor: Actor, child_id: int, *, user_id: int, relationship: str
) -> Guardianship:
    child = await get_child(session, child_id)
    if relationship not in RELATIONSHIPS:
        raise RosterError(f"relationship is one of: {', '.join(RELATIONSHIPS)}")
    user = await session.get(User, user_id)
    if user is None or user.role is not Role.PARENT:
        raise RosterError("a guardian is a user with the parent role")
    link = (
        await session.execute(
            select(Guardianship).where(Guardianship.child_id == child.id, Guardianship.user_id == user.id)
        )
    ).scalar_one_or_none()
    if link is None:
        link = Guardianship(child_id=child.id, user_id=user.id, relationship=relationship, created_at=actor.now)
        session.add(link)
    else:
        link.relationship, link.revoked_at = relationship, None
    await session.flush()
    record(session, actor, "guardian.link", f"child:{child.id}", user_id=user.id, relationship=relationship)
    return link


async def revoke_guardian(session: AsyncSession, actor: Actor, child_id: int, user_id: int) -> Guardianship:
    link = (
        await session.execute(
            select(Guardianship).where(Guardianship.child_id == child_id, Guardianship.user_id == user_id)
        )
    ).scalar_one_or_none()
    if link is None or link.revoked_at is not None:
        raise RosterError("no such guardian link", 404)
    link.revoked_at = actor.now
    record(session, actor, "guardian.revoke", f"child:{child_id}", user_id=user_id)
    return link


async def guardians_of(session: AsyncSession, child_id: int) -> list[tuple[Guardianship, User]]:
    query = (
        select(Guardianship, User)
        .join(User, User.id == Guardianship.user_id)
        .where(Guardianship.child_id == child_id)
        .order_by(Guardianship.id)
    )
    return [(link, user) for link, user in (await session.execute(query)).all()]


async def children_of_parent(session: AsyncSession, user_id: int) -> list[Child]:
    """The children a parent is an active guardian of (what issue #6 starts from)."""
    query = (
        select(Child)
        .join(Guardianship, Guardianship.child_id == Child.id)
        .where(Guardianship.user_id == user_id, Guardianship.revoked_at.is_(None))
        .order_by(Child.full_name, Child.id)
    )
    return list((await session.execute(query)).scalars())


async def parents_children_in_class(session: AsyncSession, user_id: int, class_id: int) -> list[int]:
    """Ids of the parent's children (active guardianships) who are in `class_id` now.

    Empty: the parent has no child in that class, so no right to its cameras (#6 checks this, and the class's
    consent policy with `class_fully_consented`, at every grant and again while a live view lasts).
    """
    query = (
        select(Child.id)
        .join(Guardianship, Guardianship.child_id == Child.id)
        .where(Guardianship.user_id == user_id, Guardianship.revoked_at.is_(None), Child.class_id == class_id)
        .order_by(Child.id)
    )
    return list((await session.execute(query)).scalars())


async def record_consent(session: AsyncSession, actor: Actor, child_id: int, *, given_by: str) -> Consent:
    child = await get_child(session, child_id)
    consent = Consent(
        child_id=child.id,
        given_by=check_name(given_by, "who consented", 200),
        recorded_by=actor.principal.user_id,
        given_at=actor.now,
    )
    session.add(consent)
    await session.flush()
    record(session, actor, "consent.record", f"child:{child.id}", consent_id=consent.id)
    return consent


async def withdraw_consent(session: AsyncSession, actor: Actor, child_id: int, consent_id: int) -> Consent:
    consent = await session.get(Consent, consent_id)
    if consent is None or consent.child_id != child_id or consent.withdrawn_at is not None:
        raise RosterError("no such consent in force", 404)
    consent.withdrawn_at, consent.withdrawn_by = actor.now, actor.principal.user_id
    record(session, actor, "consent.withdraw", f"child:{child_id}", consent_id=consent.id)
    return consent


async def consents_of(session: AsyncSession, child_id: int) -> list[Consent]:
    query = select(Consent).where(Consent.child_id == child_id).order_by(Consent.given_at, Consent.id)
    return list((await session.execute(query)).scalars())


async def has_consent(session: AsyncSession, child_id: int) -> bool:
    query = select(Consent.id).where(Consent.child_id == child_id, Consent.withdrawn_at.is_(None))
    return (await session.execute(query)).first() is not None


async def class_fully_consented(session: AsyncSession, class_id: int) -> bool:
    """True when every child now in the class has a consent in force (#6's default consent policy).

    An empty class counts as consented (no child to protect); #6 decides whether to open it.
    """
    consented = select(Consent.child_id).where(Consent.withdrawn_at.is_(None))
    missing = select(func.count(Child.id)).where(Child.class_id == class_id, Child.id.not_in(consented))
    return int((await session.execute(missing)).scalar_one()) == 0


async def assign_staff(session: AsyncSession, actor: Actor, class_id: int, user_id: int) -> ClassStaff:
    klass = await get_class(session, class_id)
    user = await session.get(User, user_id)
    if user is None or user.role not in STAFF_ROLES or user.unit_id != klass.unit_id:
        raise RosterError("class staff are school staff or teachers of the class's school")
    link = (
        await session.execute(select(ClassStaff).where(ClassStaff.class_id == class_id, ClassStaff.user_id == user_id))
    ).scalar_one_or_none()
    if link is None:
        link = ClassStaff(class_id=class_id, user_id=user_id, created_at=actor.now)
        session.add(link)
        await session.flush()
        record(session, actor, "class_staff.assign", f"class:{class_id}", user_id=user_id)
    return link


def class_dict(klass: SchoolClass) -> dict[str, object]:
    return {"id": klass.id, "unit_id": klass.unit_id, "school_year": klass.school_year, "name": klass.name}


def child_dict(child: Child) -> dict[str, object]:
    return {
        "id": child.id,
        "unit_id": child.unit_id,
        "code": child.code,
        "full_name": child.full_name,
        "date_of_birth": child.date_of_birth.isoformat(),
        "class_id": child.class_id,
    }


def consent_dict(consent: Consent) -> dict[str, object]:
    return {
        "id": consent.id,
        "given_by": consent.given_by,
        "given_at": consent.given_at.isoformat(),
        "withdrawn_at": consent.withdrawn_at.isoformat() if consent.withdrawn_at else None,
    }
