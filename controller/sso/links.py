"""Links between a person at the Department's provider (issuer + subject) and a local user: `sso_links`.

A user may have a password, links, or both; every link and unlink is audited (`sso.link`, `sso.unlink`) with who
did it. A user with no password and one link keeps that link unless an administrator removes it: it is their
only way to sign in. Rows moved from the old `!sso:` markers (migration 0006) carry only their key until the
person's next sign-in fills in issuer and subject.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller import audit
from controller.db.models import SsoLink, User

NO_PASSWORD = "!"  # noqa: S105 (not a hash argon2 accepts: no password signs in)
"""The password hash of an account without a password: argon2 never accepts it (nor anything starting with !)."""


class LinkError(Exception):
    """A link cannot be made or removed; `reason` is a fixed word, `other` the user a subject is linked to."""

    def __init__(self, reason: str, other: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.other = other


def link_key(issuer: str, subject: str) -> str:
    return hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()


def has_password(user: User) -> bool:
    return not user.password_hash.startswith("!")


async def user_of(session: AsyncSession, issuer: str, subject: str) -> User | None:
    """The user linked to this person, if any (a migrated row gets its issuer and subject here)."""
    query = select(SsoLink, User).join(User, User.id == SsoLink.user_id)
    row = (await session.execute(query.where(SsoLink.link_key == link_key(issuer, subject)))).first()
    if row is None:
        return None
    found, user = row
    if found.subject is None:
        found.issuer, found.subject = issuer, subject
    return user


async def links_of(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, list[SsoLink]]:
    """Each user's links, oldest first (users without one are absent)."""
    if not user_ids:
        return {}
    query = select(SsoLink).where(SsoLink.user_id.in_(user_ids)).order_by(SsoLink.id)
    found: dict[int, list[SsoLink]] = defaultdict(list)
    for item in (await session.execute(query)).scalars():
        found[item.user_id].append(item)
    return dict(found)


async def link(
    session: AsyncSession, user: User, issuer: str, subject: str, *, actor: str, now: datetime, address: str | None
) -> SsoLink:
    """Link `user` to the person; LinkError("taken") when the person is linked to another user."""
    key = link_key(issuer, subject)
    query = select(SsoLink, User.username).join(User, User.id == SsoLink.user_id).where(SsoLink.link_key == key)
    row = (await session.execute(query)).first()
    if row is not None:
        existing, username = row
        if existing.user_id != user.id:
            raise LinkError("taken", username)
        if existing.subject is None:
            existing.issuer, existing.subject = issuer, subject
        return existing
    made = SsoLink(link_key=key, issuer=issuer, subject=subject, user_id=user.id, created_at=now,
                   created_by=actor[:100])  # fmt: skip
    session.add(made)
    await session.flush()
    audit.record(session, at=now, actor=actor, action="sso.link", target=f"user:{user.username}",
                 details={"issuer": issuer, "subject": subject, "link_id": made.id}, address=address)  # fmt: skip
    return made


async def unlink(
    session: AsyncSession,
    user: User,
    link_id: int,
    *,
    actor: str,
    now: datetime,
    address: str | None,
    keep_a_way_in: bool,
) -> SsoLink:
    """Remove one of `user`'s links. LinkError("no_link") when it is not theirs; with `keep_a_way_in` (the user
    themself), LinkError("last_method") when it is their only way to sign in."""
    found = await session.get(SsoLink, link_id)
    if found is None or found.user_id != user.id:
        raise LinkError("no_link")
    if keep_a_way_in and not has_password(user):
        count = await session.execute(select(func.count(SsoLink.id)).where(SsoLink.user_id == user.id))
        if int(count.scalar_one()) <= 1:
            raise LinkError("last_method")
    await session.delete(found)
    await session.flush()
    audit.record(session, at=now, actor=actor, action="sso.unlink", target=f"user:{user.username}",
                 details={"issuer": found.issuer, "subject": found.subject, "link_id": found.id},
                 address=address)  # fmt: skip
    return found
