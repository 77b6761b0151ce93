"""From validated provider claims to a local user: the link, the role mapping, creation and role changes.

The link (issuer + subject -> local user) is a row of `sso_links` (controller/sso/links.py). A user created at
their first sign-in has no password (an administrator's password reset gives them one, and keeps the link).
The groups or roles are read at `sso_role_claim`, a claim name or a dotted path into nested claims (Keycloak's
`realm_access.roles`, `resource_access.CLIENT.roles`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller import audit
from controller.accounts import USERNAME
from controller.config import ControllerConfig
from controller.db.models import Role, Unit, User
from controller.people.users import SCOPE_KIND, end_sessions
from controller.sso import links
from controller.sso.settings import SsoRole

logger = logging.getLogger(__name__)

ACTOR = "system:sso"


class Refusal(Exception):
    """The provider vouched for this person but they may not sign in here; `reason` is a fixed word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Mapping:
    group: str
    role: Role
    unit_id: int | None


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The claim named `path`, or else the value at that dotted path (`realm_access.roles`); None when absent.

    A claim whose own name has dots (`https://example.vn/roles`) is found by its name first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def groups_of(claims: dict[str, Any], claim: str) -> list[str]:
    value = claim_at(claims, claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def mapping_for(config: ControllerConfig, claims: dict[str, Any]) -> Mapping | None:
    """The first entry of `sso_role_map` (in configuration order) whose group the claims list."""
    groups = set(groups_of(claims, config.sso_role_claim))
    for group, mapped in config.sso_role_map.items():
        if group in groups:
            return _mapping(group, mapped)
    return None


def _mapping(group: str, mapped: SsoRole) -> Mapping:
    return Mapping(group, Role(mapped.role), mapped.unit_id)


async def _check_unit(session: AsyncSession, mapping: Mapping) -> None:
    wanted = SCOPE_KIND[mapping.role]
    if not wanted:
        return
    unit = await session.get(Unit, mapping.unit_id) if mapping.unit_id is not None else None
    if unit is None or unit.kind not in wanted:
        logger.warning("sso: sso_role_map[%r] names unit %s, not a unit a %s can have", mapping.group,
                       mapping.unit_id, mapping.role.value)  # fmt: skip
        raise Refusal("bad_mapping")


async def sign_in(
    session: AsyncSession,
    config: ControllerConfig,
    claims: dict[str, Any],
    *,
    issuer: str,
    now: datetime,
    address: str | None,
) -> User:
    """The local user for these claims, created or with its role updated as the mapping says; Refusal otherwise.

    The caller's transaction holds the changes and their audit entries."""
    subject = str(claims["sub"])
    mapping = mapping_for(config, claims)
    if mapping is None:
        raise Refusal("no_role")
    await _check_unit(session, mapping)
    user = await links.user_of(session, issuer, subject)
    if user is None:
        return await _create(session, config, claims, mapping, issuer, now, address)
    if user.disabled:
        raise Refusal("disabled")
    if (user.role, user.unit_id) != (mapping.role, mapping.unit_id):
        if user.role is Role.ADMIN and mapping.role is not Role.ADMIN and not await _another_admin(session, user):
            logger.warning("sso: %s is the last active administrator; the provider's %r is not applied",
                           user.username, mapping.group)  # fmt: skip
            raise Refusal("last_admin")
        before = {"role": user.role.value, "unit_id": user.unit_id}
        user.role, user.unit_id = mapping.role, mapping.unit_id
        await end_sessions(session, user.id)
        after = {"role": mapping.role.value, "unit_id": mapping.unit_id}
        audit.record(session, at=now, actor=ACTOR, action="role.change", target=f"user:{user.username}",
                     details={"before": before, "after": after, "via": "sso", "group": mapping.group},
                     address=address)  # fmt: skip
    await links.link(session, user, issuer, str(claims["sub"]), actor=ACTOR, now=now, address=address)
    return user


async def _another_admin(session: AsyncSession, user: User) -> bool:
    others = select(func.count(User.id)).where(User.role == Role.ADMIN, User.disabled.is_(False), User.id != user.id)
    return int((await session.execute(others)).scalar_one()) > 0


async def _create(
    session: AsyncSession,
    config: ControllerConfig,
    claims: dict[str, Any],
    mapping: Mapping,
    issuer: str,
    now: datetime,
    address: str | None,
) -> User:
    if not config.sso_create_users:
        raise Refusal("unknown_user")
    raw = claims.get(config.sso_username_claim)
    username = raw.strip().lower() if isinstance(raw, str) else ""
    if not USERNAME.match(username):
        raise Refusal("bad_username")
    if (await session.execute(select(User.id).where(User.username == username))).first() is not None:
        raise Refusal("not_linked")
    name = claims.get("name")
    user = User(
        username=username,
        display_name=name[:200] if isinstance(name, str) and name.strip() else username,
        password_hash=links.NO_PASSWORD,
        role=mapping.role,
        unit_id=mapping.unit_id,
        created_at=now,
    )
    session.add(user)
    await session.flush()
    audit.record(session, at=now, actor=ACTOR, action="user.create", target=f"user:{username}",
                 details={"role": mapping.role.value, "unit_id": mapping.unit_id, "via": "sso", "group": mapping.group},
                 address=address)  # fmt: skip
    await links.link(session, user, issuer, str(claims["sub"]), actor=ACTOR, now=now, address=address)
    return user
