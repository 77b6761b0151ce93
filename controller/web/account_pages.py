"""A user's own account page (`/account`): who they are, their ways to sign in, and their Department (single
sign-on) account links, which they link (through `controller.sso.routes.start_link`) and remove here; and the
administrator's removal of a user's link from the user administration page.

A user may not remove their last way to sign in (no password and one link); an administrator may, and the
user's sessions end (the link may have been the wrong person's). Every removal is audited `sso.unlink`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controller import state
from controller.db.models import User
from controller.people import users
from controller.people.users import UserAdminError
from controller.security.access import ADMINS, Kind, Policy, Routes, Scope, principal_of
from controller.sso import links
from controller.web.people_api import EVERYONE, actor_of

ACCOUNT_PATH = "/account"
_DONE = {"linked": "sso_done_linked", "unlinked": "sso_done_unlinked"}


async def account_page(request: web.Request, *, status: int = 200, error: str | None = None) -> web.Response:
    principal = principal_of(request)
    async with request.app[state.DB]() as session:
        user = await session.get(User, principal.user_id)
        if user is None:  # deleted since the request was let in
            raise web.HTTPNotFound()
        mine = (await links.links_of(session, [user.id])).get(user.id, [])
    context: dict[str, Any] = {
        "account": user,
        "has_password": links.has_password(user),
        "links": mine,
        "sso_enabled": request.app[state.CONFIG].sso_enabled,
        "done": _DONE.get(request.query.get("done", "")),
        "error": error,
    }
    return request.app[state.RENDERER].render(request, "account.html", status=status, **context)


async def account(request: web.Request) -> web.StreamResponse:
    """My account: who I am and my ways to sign in."""
    return await account_page(request)


async def unlink_mine(request: web.Request) -> web.StreamResponse:
    """Remove one of my Department account links (not my last way to sign in)."""
    actor = actor_of(request)
    async with request.app[state.DB].begin() as session:
        user = await session.get(User, actor.principal.user_id)
        if user is None:
            raise web.HTTPNotFound()
        try:
            await links.unlink(session, user, int(request.match_info["link_id"]), actor=actor.principal.actor,
                               now=actor.now, address=actor.address, keep_a_way_in=True)  # fmt: skip
            reason = ""
        except links.LinkError as exc:
            reason = exc.reason
    if reason == "no_link":
        raise web.HTTPNotFound()
    if reason:
        return await account_page(request, status=409, error="sso_last_method")
    raise web.HTTPSeeOther(f"{ACCOUNT_PATH}?done=unlinked")


async def admin_unlink(request: web.Request) -> web.StreamResponse:
    """Remove a user's Department account link (administrators); the user's sessions end."""
    actor = actor_of(request)
    user_id = int(request.match_info["user_id"])
    async with request.app[state.DB].begin() as session:
        try:
            user = await users.get_user(session, actor, user_id)
            await links.unlink(session, user, int(request.match_info["link_id"]), actor=actor.principal.actor,
                               now=actor.now, address=actor.address, keep_a_way_in=False)  # fmt: skip
        except (UserAdminError, links.LinkError):
            raise web.HTTPNotFound() from None
        await users.end_sessions(session, user.id)
    raise web.HTTPSeeOther(f"/admin/users/{user_id}")


def add_routes(routes: Routes) -> None:
    routes.add("GET", ACCOUNT_PATH, account, Policy(EVERYONE, Kind.PAGE))
    routes.add("POST", "/account/sso/{link_id:\\d+}/unlink", unlink_mine, Policy(EVERYONE, Kind.PAGE))
    one_user = Policy(ADMINS, Kind.PAGE, Scope.USER)
    routes.add("POST", "/admin/users/{user_id:\\d+}/sso/{link_id:\\d+}/unlink", admin_unlink, one_user)
