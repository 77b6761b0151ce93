"""Starting a session once someone has shown who they are, by password (`POST /signin`) or through the
Department's provider (`GET /signin/sso/callback`): the one place that does it, so both ways do the same.

- the caller's previous session (if its cookie is still valid) ends and a session with a new id starts;
- the audit log gets the sign-in (`signin` or `signin.sso`), with the address;
- the answer is a 303 to where the person was going (or their role's landing page), setting the session cookie
  with the configured flags (HttpOnly, SameSite=Lax, Secure and the __Host- prefix when `cookie_secure`).

Lockout bookkeeping applies to passwords only: `with_password` counts a failure (and locks the account after
`login_max_failures`), audits it as `signin.failed`, and clears the count on success
(`controller.accounts.authenticate`). A sign-in through the provider neither counts nor lifts a password lockout:
the provider vouches for the person, and their password stays locked for a guesser.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from controller import accounts, audit, state
from controller.db.models import Role, User
from controller.security import sessions
from controller.security.access import TECHNICIANS
from controller.web import booking_pages


async def with_password(
    session: AsyncSession, request: web.Request, *, username: str, password: str, now: datetime
) -> User | None:
    """The user when the name and password match and the account is usable; a failure is counted and audited."""
    app = request.app
    user = await accounts.authenticate(
        session, app[state.PASSWORDS], app[state.CONFIG], username=username, password=password, now=now
    )
    if user is None:
        audit.record(session, at=now, actor="anonymous", action="signin.failed", target=f"user:{username}",
                     address=request.remote or "unknown")  # fmt: skip
    return user


async def start(
    session: AsyncSession,
    request: web.Request,
    user: User,
    *,
    now: datetime,
    action: str,
    details: dict[str, Any] | None = None,
) -> str:
    """End the caller's previous session, start a new one for `user` and audit `action`; returns the cookie value.

    The caller's transaction holds the changes."""
    config = request.app[state.CONFIG]
    address = request.remote or "unknown"
    old = request.cookies.get(sessions.cookie_name(config))
    if old:
        previous = await sessions.resolve(session, old, now, config)
        if previous is not None:
            await sessions.end(session, previous.session_id)
    token = await sessions.start(session, user, now, address)
    audit.record(session, at=now, actor=f"user:{user.username}", action=action, address=address,
                 details=details or {})  # fmt: skip
    return token


def redirect(request: web.Request, token: str, next_path: str, role: Role) -> web.HTTPSeeOther:
    """The 303 that ends a sign-in: to `next_path` (a local path), or the role's landing page for `/`."""
    if next_path == "/" and role not in TECHNICIANS:
        next_path = booking_pages.landing(role)
    response = web.HTTPSeeOther(next_path)
    sessions.set_cookie(response, request.app[state.CONFIG], token)
    return response
