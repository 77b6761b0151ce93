"""Administration pages: users (administrators; district technicians for their schools' staff), the audit
log (administrators), the roster import with its preview (administrators), and my API tokens (everyone). A
user's Department account links are shown on the user pages (`controller.web.account_pages` removes them).

Forms post with the session's CSRF token; every change goes through the same services as the API
(`controller.people`), so it is checked and audited the same way.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select

from controller import state
from controller.db.models import Role, Unit
from controller.people import audit_view, tokens, users
from controller.people.importer import COLUMNS, RosterImportError
from controller.people.tabular import MAX_ROWS, TableError
from controller.people.users import UserAdminError
from controller.security.access import ADMINS, TECHNICIANS, Kind, Policy, Routes, Scope, principal_of
from controller.sso import links
from controller.web import account_pages, place_pages, views
from controller.web.people_api import EVERYONE, BadBody, actor_of, import_kind, run_import
from controller.web.render import DISPLAY_ZONE

logger = logging.getLogger(__name__)

PAGE = Kind.PAGE
TECHNICIAN_ROLES = (Role.SCHOOL_STAFF, Role.TEACHER)


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    return request.app[state.RENDERER].render(request, template, status=status, **context)


def _text(form: MultiDictProxy[Any], name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    return value[:limit].strip() if isinstance(value, str) else ""


def _unit_id(value: str) -> int | None:
    return int(value) if value.isdigit() else None


async def _choices(request: web.Request) -> dict[str, Any]:
    principal = principal_of(request)
    async with request.app[state.DB]() as session:
        units = await views.visible_units(session, principal)
        names = {unit.id: unit.name for unit in (await session.execute(select(Unit))).scalars()}
    roles = list(Role) if principal.role is Role.ADMIN else list(TECHNICIAN_ROLES)
    return {"units": units, "unit_names": names, "roles": roles}


# -- users ----------------------------------------------------------------------------------------------------
async def users_page(request: web.Request, *, status: int = 200, **extra: Any) -> web.StreamResponse:
    query = request.query.get("q", "")[:64]
    async with request.app[state.DB]() as session:
        rows = await users.visible_users(session, principal_of(request), search=query)
        linked = await links.links_of(session, [row.id for row in rows])
    context = {"rows": rows, "linked": linked, "q": query, "error": None, "created": None, "password": None, **extra}
    return _render(request, "admin_users.html", status, **(await _choices(request)), **context)


async def users_list(request: web.Request) -> web.StreamResponse:
    return await users_page(request)


async def users_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        role = Role(_text(form, "role", 32))
    except ValueError:
        return await users_page(request, status=400, error="role?")
    async with request.app[state.DB].begin() as session:
        try:
            user, password = await users.create(
                session, request.app[state.PASSWORDS], actor_of(request), username=_text(form, "username", 64),
                role=role, unit_id=_unit_id(_text(form, "unit_id", 12)), display_name=_text(form, "display_name"),
            )  # fmt: skip
        except UserAdminError as exc:
            error = str(exc)
            user = None
    if user is None:
        return await users_page(request, status=400, error=error)
    return await users_page(request, created=user, password=password)


async def user_page(
    request: web.Request, *, status: int = 200, password: str | None = None, error: str | None = None
) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        try:
            target = await users.get_user(session, actor_of(request), int(request.match_info["user_id"]))
        except UserAdminError as exc:
            return _render(request, "message.html", exc.status, message=str(exc))
        target_links = (await links.links_of(session, [target.id])).get(target.id, [])
    return _render(
        request, "admin_user.html", status, target=target, password=password, error=error, links=target_links,
        has_password=links.has_password(target), **(await _choices(request)),
    )  # fmt: skip


async def user_show(request: web.Request) -> web.StreamResponse:
    return await user_page(request)


async def user_role(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        role = Role(_text(form, "role", 32))
    except ValueError:
        return await user_page(request, status=400, error="role?")
    async with request.app[state.DB].begin() as session:
        try:
            await users.change_role(
                session, actor_of(request), int(request.match_info["user_id"]), role=role,
                unit_id=_unit_id(_text(form, "unit_id", 12)),
            )  # fmt: skip
            error = None
        except UserAdminError as exc:
            error = str(exc)
    if error is not None:
        return await user_page(request, status=400, error=error)
    raise web.HTTPSeeOther(f"/admin/users/{request.match_info['user_id']}")


async def _disable(request: web.Request, disabled: bool) -> web.StreamResponse:
    async with request.app[state.DB].begin() as session:
        try:
            await users.set_disabled(session, actor_of(request), int(request.match_info["user_id"]), disabled=disabled)
            error = None
        except UserAdminError as exc:
            error = str(exc)
    if error is not None:
        return await user_page(request, status=409, error=error)
    raise web.HTTPSeeOther(f"/admin/users/{request.match_info['user_id']}")


async def user_disable(request: web.Request) -> web.StreamResponse:
    return await _disable(request, True)


async def user_enable(request: web.Request) -> web.StreamResponse:
    return await _disable(request, False)


async def user_reset(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB].begin() as session:
        try:
            _, password = await users.reset_password(
                session, request.app[state.PASSWORDS], actor_of(request), int(request.match_info["user_id"])
            )
        except UserAdminError as exc:
            return _render(request, "message.html", exc.status, message=str(exc))
    return await user_page(request, password=password)


# -- audit log ------------------------------------------------------------------------------------------------
def _local_day(value: str, what: str) -> datetime | None:
    """The start of a local (Asia/Ho_Chi_Minh) day given as YYYY-MM-DD."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise BadBody(f"{what}: YYYY-MM-DD") from None
    return datetime.combine(day, time(), tzinfo=DISPLAY_ZONE)


async def audit_page(request: web.Request) -> web.StreamResponse:
    query = request.query
    filters = {name: query.get(name, "")[:100] for name in ("actor", "action", "from", "to")}
    before = query.get("before_id", "")
    try:
        since = _local_day(filters["from"], "from")
        until = _local_day(filters["to"], "to")
        wanted = audit_view.AuditFilter(
            actor=filters["actor"].strip(),
            action=filters["action"].strip(),
            since=since,
            until=until + timedelta(days=1) if until else None,
            before_id=int(before) if before.isdigit() else None,
        )
    except BadBody as exc:
        return _render(request, "admin_audit.html", 400, entries=[], filters=filters, next_query="", error=exc.message)
    async with request.app[state.DB]() as session:
        found = await audit_view.page(session, wanted)
    next_query = ""
    if found.next_before_id is not None:
        next_query = urlencode({**{k: v for k, v in filters.items() if v}, "before_id": found.next_before_id})
    return _render(
        request, "admin_audit.html", entries=found.entries, filters=filters, next_query=next_query, error=None
    )


# -- roster import --------------------------------------------------------------------------------------------
def _import_context(**extra: Any) -> dict[str, Any]:
    return {
        "columns": {kind.value: columns for kind, columns in COLUMNS.items()},
        "max_rows": MAX_ROWS,
        "max_page_mib": 1,
        "report": None,
        "error": None,
        **extra,
    }


async def import_page(request: web.Request) -> web.StreamResponse:
    return _render(request, "admin_import.html", **_import_context())


async def import_upload(request: web.Request) -> web.StreamResponse:
    form = await request.post()  # bounded by the app's client_max_size (1 MiB); the CLI and API take more
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return _render(request, "admin_import.html", 400, **_import_context(error="file?"))
    data = upload.file.read()
    try:
        kind = import_kind(_text(form, "kind", 32))
        report = await run_import(
            request.app, data, upload.filename, kind, dry_run=_text(form, "mode", 16) != "apply",
            actor=principal_of(request).actor, address=request.remote,
        )  # fmt: skip
    except (BadBody, TableError, RosterImportError) as exc:
        return _render(request, "admin_import.html", 400, **_import_context(error=str(exc)))
    status = 422 if report.error_count else 200
    return _render(request, "admin_import.html", status, **_import_context(report=report))


# -- my API tokens --------------------------------------------------------------------------------------------
async def tokens_page(
    request: web.Request, *, status: int = 200, secret: str | None = None, error: str | None = None
) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        mine = await tokens.list_for(session, principal_of(request).user_id, request.app[state.CLOCK].now())
    return _render(request, "account_tokens.html", status, tokens=mine, secret=secret, error=error)


async def tokens_list(request: web.Request) -> web.StreamResponse:
    return await tokens_page(request)


async def tokens_create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    actor = actor_of(request)
    days = _text(form, "days", 4)
    async with request.app[state.DB].begin() as session:
        try:
            made = await tokens.create(
                session, actor.principal.user_id, name=_text(form, "name", 100),
                days=int(days) if days.isdigit() else 0, now=actor.now,
            )  # fmt: skip
        except tokens.TokenError as exc:
            error = str(exc)
            made = None
        if made is not None:
            users.record(session, actor, "token.create", f"token:{made.token.id}", name=made.token.name)
    if made is None:
        return await tokens_page(request, status=400, error=error)
    return await tokens_page(request, secret=made.secret)


async def tokens_revoke(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    async with request.app[state.DB].begin() as session:
        token = await tokens.revoke(session, actor.principal.user_id, int(request.match_info["token_id"]), actor.now)
        if token is not None:
            users.record(session, actor, "token.revoke", f"token:{token.id}")
    if token is None:
        raise web.HTTPNotFound()
    raise web.HTTPSeeOther("/account/tokens")


def add_routes(routes: Routes) -> None:
    place_pages.add_routes(routes)  # units and rooms
    account_pages.add_routes(routes)  # my account and Department account links
    technicians = Policy(TECHNICIANS, PAGE)
    one_user = Policy(TECHNICIANS, PAGE, Scope.USER)
    admins = Policy(ADMINS, PAGE)
    routes.add("GET", "/admin/users", users_list, technicians)
    routes.add("POST", "/admin/users", users_create, technicians)
    routes.add("GET", "/admin/users/{user_id:\\d+}", user_show, one_user)
    routes.add("POST", "/admin/users/{user_id:\\d+}/role", user_role, one_user)
    routes.add("POST", "/admin/users/{user_id:\\d+}/disable", user_disable, one_user)
    routes.add("POST", "/admin/users/{user_id:\\d+}/enable", user_enable, one_user)
    routes.add("POST", "/admin/users/{user_id:\\d+}/reset-password", user_reset, one_user)
    routes.add("GET", "/admin/audit", audit_page, admins)
    routes.add("GET", "/admin/import", import_page, admins)
    routes.add("POST", "/admin/import", import_upload, admins)
    routes.add("GET", "/account/tokens", tokens_list, Policy(EVERYONE, PAGE))
    routes.add("POST", "/account/tokens", tokens_create, Policy(EVERYONE, PAGE))
    routes.add("POST", "/account/tokens/{token_id:\\d+}/revoke", tokens_revoke, Policy(EVERYONE, PAGE))
