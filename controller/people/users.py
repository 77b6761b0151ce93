"""User administration: list, create (a random first password shown once), change role and scope, disable,
enable, reset the password. Every change is audited in the caller's transaction.

Administrators manage everyone. A district technician manages school staff and teachers of the schools in
their district, and nothing else (not parents, not other technicians, not roles above their own).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller import accounts, audit
from controller.db.models import Role, Unit, UnitKind, User, UserSession
from controller.people import tokens
from controller.security.passwords import Passwords, generate_password
from controller.security.sessions import Principal
from controller.units import is_within, parents

logger = logging.getLogger(__name__)

SCOPE_KIND: dict[Role, tuple[UnitKind, ...]] = {
    Role.ADMIN: (),
    Role.DEPARTMENT_BOOKER: (UnitKind.DEPARTMENT, UnitKind.DISTRICT),
    Role.DISTRICT_TECHNICIAN: (UnitKind.DISTRICT,),
    Role.SCHOOL_STAFF: (UnitKind.SCHOOL,),
    Role.TEACHER: (UnitKind.SCHOOL,),
    Role.PARENT: (UnitKind.SCHOOL,),
}
"""The kind of unit each role is scoped to (an administrator has none)."""
TECHNICIAN_MANAGES = frozenset({Role.SCHOOL_STAFF, Role.TEACHER})
LIST_LIMIT = 500


class UserAdminError(ValueError):
    """The change is not allowed or not possible; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Actor:
    """Who makes the change, for checks and the audit log."""

    principal: Principal
    address: str | None
    now: datetime


async def _check_scope(session: AsyncSession, actor: Actor, role: Role, unit_id: int | None) -> None:
    """Refuse a role/unit the actor may not hand out, or a unit of the wrong kind for the role."""
    wanted = SCOPE_KIND[role]
    if not wanted:
        if unit_id is not None:
            raise UserAdminError("an administrator has no unit scope")
    else:
        if unit_id is None:
            raise UserAdminError(f"a {role.value} needs a unit")
        unit = await session.get(Unit, unit_id)
        if unit is None:
            raise UserAdminError(f"unit {unit_id} does not exist")
        if unit.kind not in wanted:
            kinds = " or ".join(kind.value for kind in wanted)
            raise UserAdminError(f"a {role.value} is scoped to a {kinds}, and unit {unit_id} is a {unit.kind.value}")
    principal = actor.principal
    if principal.role is Role.ADMIN:
        return
    if principal.role is not Role.DISTRICT_TECHNICIAN or role not in TECHNICIAN_MANAGES:
        raise UserAdminError("you may not give this role", 403)
    if (
        principal.unit_id is None
        or unit_id is None
        or not is_within(await parents(session), unit_id, principal.unit_id)
    ):
        raise UserAdminError("that school is outside your district", 403)


async def _may_manage(session: AsyncSession, actor: Actor, user: User) -> None:
    principal = actor.principal
    if principal.role is Role.ADMIN:
        return
    in_district = (
        principal.role is Role.DISTRICT_TECHNICIAN
        and principal.unit_id is not None
        and user.unit_id is not None
        and user.role in TECHNICIAN_MANAGES
        and is_within(await parents(session), user.unit_id, principal.unit_id)
    )
    if not in_district:
        raise UserAdminError("you may not manage this user", 403)


async def visible_users(
    session: AsyncSession, principal: Principal, *, search: str = "", limit: int = LIST_LIMIT, offset: int = 0
) -> list[User]:
    query = select(User).order_by(User.username).limit(min(limit, LIST_LIMIT)).offset(max(offset, 0))
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(func.lower(User.username).like(pattern) | func.lower(User.display_name).like(pattern))
    if principal.role is not Role.ADMIN:
        if principal.role is not Role.DISTRICT_TECHNICIAN or principal.unit_id is None:
            return []
        tree = await parents(session)
        units = [unit_id for unit_id in tree if is_within(tree, unit_id, principal.unit_id)]
        query = query.where(User.unit_id.in_(units), User.role.in_(TECHNICIAN_MANAGES))
    return list((await session.execute(query)).scalars())


async def get_user(session: AsyncSession, actor: Actor, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise UserAdminError("no such user", 404)
    await _may_manage(session, actor, user)
    return user


def record(session: AsyncSession, actor: Actor, action: str, target: str, **details: object) -> None:
    """An audit entry for a change `actor` makes, in the same transaction as the change."""
    audit.record(
        session,
        at=actor.now,
        actor=actor.principal.actor,
        action=action,
        target=target,
        details=details,
        address=actor.address,
    )


def _audit(session: AsyncSession, actor: Actor, action: str, user: User, **details: object) -> None:
    record(session, actor, action, f"user:{user.username}", user_id=user.id, **details)


async def create(
    session: AsyncSession,
    passwords: Passwords,
    actor: Actor,
    *,
    username: str,
    role: Role,
    unit_id: int | None,
    display_name: str = "",
) -> tuple[User, str]:
    """A new user and its random first password (to show once: it is stored only hashed)."""
    await _check_scope(session, actor, role, unit_id)
    password = generate_password()
    try:
        user = await accounts.create_user(
            session,
            passwords,
            username=username.strip().lower(),
            password=password,
            role=role,
            unit_id=unit_id,
            display_name=display_name.strip()[:200],
            now=actor.now,
        )
    except accounts.AccountError as exc:
        raise UserAdminError(str(exc), 409 if "taken" in str(exc) else 400) from None
    _audit(session, actor, "user.create", user, role=role.value, unit_id=unit_id)
    return user, password


async def change_role(session: AsyncSession, actor: Actor, user_id: int, *, role: Role, unit_id: int | None) -> User:
    user = await get_user(session, actor, user_id)
    await _check_scope(session, actor, role, unit_id)
    if user.role is Role.ADMIN and role is not Role.ADMIN:
        await _keep_an_admin(session, user)
    before = {"role": user.role.value, "unit_id": user.unit_id}
    user.role, user.unit_id = role, unit_id
    await end_sessions(session, user.id)  # the new scope applies from the next sign-in
    _audit(session, actor, "user.role", user, before=before, after={"role": role.value, "unit_id": unit_id})
    return user


async def set_disabled(session: AsyncSession, actor: Actor, user_id: int, *, disabled: bool) -> User:
    user = await get_user(session, actor, user_id)
    if disabled and user.id == actor.principal.user_id:
        raise UserAdminError("you cannot disable your own account", 409)
    if disabled and user.role is Role.ADMIN:
        await _keep_an_admin(session, user)
    user.disabled = disabled
    if disabled:
        await end_sessions(session, user.id)
        await tokens.revoke_all(session, user.id, actor.now)
    _audit(session, actor, "user.disable" if disabled else "user.enable", user)
    return user


async def reset_password(session: AsyncSession, passwords: Passwords, actor: Actor, user_id: int) -> tuple[User, str]:
    """A new random password (shown once); the user's sessions end and a lockout is lifted."""
    user = await get_user(session, actor, user_id)
    password = generate_password()
    user.password_hash = await passwords.hash(password)
    user.failed_logins, user.locked_until = 0, None
    await end_sessions(session, user.id)
    _audit(session, actor, "user.password_reset", user)
    return user, password


async def end_sessions(session: AsyncSession, user_id: int) -> None:
    """Sign the user out everywhere (their server-side sessions are deleted)."""
    await session.execute(delete(UserSession).where(UserSession.user_id == user_id))


async def _keep_an_admin(session: AsyncSession, user: User) -> None:
    others = await session.execute(
        select(func.count(User.id)).where(User.role == Role.ADMIN, User.disabled.is_(False), User.id != user.id)
    )
    if int(others.scalar_one()) == 0:
        raise UserAdminError("this is the last active administrator", 409)


def user_dict(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "unit_id": user.unit_id,
        "disabled": user.disabled,
        "locked": user.locked_until is not None,
        "created_at": user.created_at.isoformat(),
    }
