"""The people API: my API tokens, user administration, the audit log, classes, children, guardians,
consents, and the roster import. Every route goes through `Routes.add` with its policy.

Errors are {"error": "..."} with a 4xx status. Bodies are JSON objects checked by pydantic (extra fields
refused), except the import, whose body is the file itself.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Any, TypeVar

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from controller import state
from controller.db.models import Role
from controller.people import audit_view, importer, roster, tabular, tokens, users
from controller.people.answers import (
    AuditPageOut,
    ChildDetailOut,
    ChildOut,
    ChildrenOut,
    ClassDetailOut,
    ClassesOut,
    ClassOut,
    ConsentOut,
    GuardianLinkedOut,
    ImportReportOut,
    NewTokenOut,
    RevokedOut,
    StaffAssignedOut,
    TokenOut,
    TokensOut,
    UserOut,
    UsersOut,
    UserWithPasswordOut,
)
from controller.people.importer import Kind as ImportKind
from controller.people.importer import RosterImportError
from controller.people.roster import RosterError
from controller.people.tabular import TableError, read_table
from controller.people.users import Actor, UserAdminError
from controller.security.access import ADMINS, MAX_ID, TECHNICIANS, Kind, Policy, Routes, Scope, principal_of
from controller.web import jsonbody
from controller.web.errors import error
from controller.web.jsonbody import BodyError, parse_json, parse_query

logger = logging.getLogger(__name__)

EVERYONE = frozenset(Role)
SCHOOL_READ = frozenset({Role.ADMIN, Role.DISTRICT_TECHNICIAN, Role.SCHOOL_STAFF, Role.TEACHER})
SCHOOL_WRITE = frozenset({Role.ADMIN, Role.DISTRICT_TECHNICIAN, Role.SCHOOL_STAFF})
CHILD_READ = SCHOOL_READ | {Role.PARENT}
CONSENT_WRITE = SCHOOL_WRITE | {Role.PARENT}
MAX_JSON_BYTES = jsonbody.MAX_JSON_BYTES

Body = TypeVar("Body", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewTokenBody(_Strict):
    name: str = Field(min_length=1, max_length=100)
    days: int = Field(default=90, ge=1, le=tokens.MAX_LIFETIME_DAYS)


class NewUserBody(_Strict):
    username: str = Field(min_length=2, max_length=64)
    role: Role
    unit_id: int | None = None
    display_name: str = Field(default="", max_length=200)


class RoleBody(_Strict):
    role: Role
    unit_id: int | None = None


class NewClassBody(_Strict):
    school_year: str = Field(max_length=9)
    name: str = Field(min_length=1, max_length=100)


class NewChildBody(_Strict):
    code: str = Field(min_length=1, max_length=64)
    full_name: str = Field(min_length=1, max_length=200)
    date_of_birth: date
    class_id: int | None = None


class MoveBody(_Strict):
    class_id: int | None


class GuardianBody(_Strict):
    user_id: int
    relationship: str = Field(max_length=32)


class ConsentBody(_Strict):
    given_by: str = Field(default="", max_length=200)


class StaffBody(_Strict):
    user_id: int


BadBody = BodyError
"""The people routes' name for `jsonbody.BodyError` (one rule for bodies and queries: see controller.web.jsonbody)."""


async def parse(request: web.Request, model: type[Body]) -> Body:
    return await parse_json(request, model, MAX_JSON_BYTES)


def actor_of(request: web.Request) -> Actor:
    return Actor(principal_of(request), request.remote, request.app[state.CLOCK].now())


def _id(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


# -- API tokens ---------------------------------------------------------------------------------------------
async def list_tokens(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    async with request.app[state.DB]() as session:
        mine = await tokens.list_for(session, principal.user_id, request.app[state.CLOCK].now())
    return web.json_response({"tokens": [tokens.token_dict(token) for token in mine]})


async def create_token(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    if actor.principal.token_id is not None:
        return error(403, "an API token cannot make API tokens: sign in")
    try:
        body = await parse(request, NewTokenBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB].begin() as session:
        try:
            made = await tokens.create(session, actor.principal.user_id, name=body.name, days=body.days, now=actor.now)
        except tokens.TokenError as exc:
            return error(409, str(exc))
        users.record(session, actor, "token.create", f"token:{made.token.id}", name=made.token.name)
        shown = {**tokens.token_dict(made.token), "token": made.secret}
    return web.json_response(shown, status=201)


async def revoke_token(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    async with request.app[state.DB].begin() as session:
        token = await tokens.revoke(session, actor.principal.user_id, _id(request, "token_id"), actor.now)
        if token is None:
            return error(404, "no such token")
        users.record(session, actor, "token.revoke", f"token:{token.id}")
        shown = tokens.token_dict(token)
    return web.json_response(shown)


# -- users ----------------------------------------------------------------------------------------------------
async def list_users(request: web.Request) -> web.StreamResponse:
    try:
        wanted = parse_query(UsersQuery, dict(request.query))
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB]() as session:
        found = await users.visible_users(session, principal_of(request), search=wanted.q, offset=wanted.offset)
    return web.json_response({"users": [users.user_dict(user) for user in found]})


async def create_user(request: web.Request) -> web.StreamResponse:
    try:
        body = await parse(request, NewUserBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB].begin() as session:
        try:
            user, password = await users.create(
                session, request.app[state.PASSWORDS], actor_of(request), username=body.username, role=body.role,
                unit_id=body.unit_id, display_name=body.display_name,
            )  # fmt: skip
        except UserAdminError as exc:
            return error(exc.status, str(exc))
        shown = {**users.user_dict(user), "password": password}
    return web.json_response(shown, status=201)


async def get_user(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        try:
            user = await users.get_user(session, actor_of(request), _id(request, "user_id"))
        except UserAdminError as exc:
            return error(exc.status, str(exc))
        return web.json_response(users.user_dict(user))


async def change_role(request: web.Request) -> web.StreamResponse:
    try:
        body = await parse(request, RoleBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB].begin() as session:
        try:
            user = await users.change_role(
                session, actor_of(request), _id(request, "user_id"), role=body.role, unit_id=body.unit_id
            )
        except UserAdminError as exc:
            return error(exc.status, str(exc))
        return web.json_response(users.user_dict(user))


async def _set_disabled(request: web.Request, disabled: bool) -> web.StreamResponse:
    async with request.app[state.DB].begin() as session:
        try:
            user = await users.set_disabled(session, actor_of(request), _id(request, "user_id"), disabled=disabled)
        except UserAdminError as exc:
            return error(exc.status, str(exc))
        return web.json_response(users.user_dict(user))


async def disable_user(request: web.Request) -> web.StreamResponse:
    return await _set_disabled(request, True)


async def enable_user(request: web.Request) -> web.StreamResponse:
    return await _set_disabled(request, False)


async def reset_password(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB].begin() as session:
        try:
            user, password = await users.reset_password(
                session, request.app[state.PASSWORDS], actor_of(request), _id(request, "user_id")
            )
        except UserAdminError as exc:
            return error(exc.status, str(exc))
        return web.json_response({**users.user_dict(user), "password": password})


# -- audit log ------------------------------------------------------------------------------------------------
class UsersQuery(BaseModel):
    """GET /api/users: a search and a page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    q: str = Field(default="", max_length=64, description="part of a username or a name")
    offset: int = Field(default=0, ge=0, le=MAX_ID, description="users to skip (pages of 200)")


class AuditQuery(BaseModel):
    """GET /api/audit: filters, newest first, paged by `before_id`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str = Field(default="", max_length=100, description="exactly, e.g. user:admin")
    action: str = Field(default="", max_length=64, description="exactly, or a prefix ending in .* (user.*)")
    since: AwareDatetime | None = Field(default=None, description="ISO 8601 with a zone")
    until: AwareDatetime | None = Field(default=None, description="ISO 8601 with a zone")
    before_id: int | None = Field(default=None, ge=0, le=MAX_ID, description="next_before_id of the previous page")
    limit: int = Field(default=audit_view.PAGE_SIZE, ge=1, le=audit_view.MAX_PAGE_SIZE)


class ImportQuery(BaseModel):
    """POST /api/import (the file is the body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ImportKind | None = Field(default=None, description="guessed from the columns when left out")
    dry_run: bool = Field(default=False, description="check and report only (1, true, yes)")
    filename: str = Field(default="", max_length=255, description="the file's name: .xlsx is read as XLSX")


def audit_filter(query: Any) -> audit_view.AuditFilter:
    """The filter from a query string; BadBody (422) naming what is wrong."""
    wanted = parse_query(AuditQuery, dict(query))
    return audit_view.AuditFilter(
        actor=wanted.actor.strip(),
        action=wanted.action.strip(),
        since=wanted.since,
        until=wanted.until,
        before_id=wanted.before_id,
        limit=wanted.limit,
    )


async def list_audit(request: web.Request) -> web.StreamResponse:
    try:
        wanted = audit_filter(request.query)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB]() as session:
        found = await audit_view.page(session, wanted)
    return web.json_response(
        {"entries": [audit_view.entry_dict(e) for e in found.entries], "next_before_id": found.next_before_id}
    )


# -- classes and children -------------------------------------------------------------------------------------
async def list_classes(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        try:
            await roster.school(session, _id(request, "unit_id"))
        except RosterError as exc:
            return error(exc.status, str(exc))
        found = await roster.classes_of(session, _id(request, "unit_id"))
    return web.json_response({"classes": [roster.class_dict(klass) for klass in found]})


async def create_class(request: web.Request) -> web.StreamResponse:
    try:
        body = await parse(request, NewClassBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB].begin() as session:
        try:
            klass = await roster.create_class(
                session, actor_of(request), _id(request, "unit_id"), school_year=body.school_year, name=body.name
            )
        except RosterError as exc:
            return error(exc.status, str(exc))
        return web.json_response(roster.class_dict(klass), status=201)


async def get_class(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        try:
            klass = await roster.get_class(session, _id(request, "class_id"))
        except RosterError as exc:
            return error(exc.status, str(exc))
        children = await roster.children_of_class(session, klass.id)
        consented = await roster.class_fully_consented(session, klass.id)
    return web.json_response(
        {**roster.class_dict(klass), "children": [roster.child_dict(c) for c in children], "all_consented": consented}
    )


async def assign_staff(request: web.Request) -> web.StreamResponse:
    try:
        body = await parse(request, StaffBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB].begin() as session:
        try:
            await roster.assign_staff(session, actor_of(request), _id(request, "class_id"), body.user_id)
        except RosterError as exc:
            return error(exc.status, str(exc))
    return web.json_response({"class_id": _id(request, "class_id"), "user_id": body.user_id}, status=201)


async def create_child(request: web.Request) -> web.StreamResponse:
    try:
        body = await parse(request, NewChildBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB].begin() as session:
        try:
            child = await roster.create_child(
                session, actor_of(request), _id(request, "unit_id"), code=body.code, full_name=body.full_name,
                date_of_birth=body.date_of_birth, class_id=body.class_id,
            )  # fmt: skip
        except RosterError as exc:
            return error(exc.status, str(exc))
        return web.json_response(roster.child_dict(child), status=201)


async def get_child(request: web.Request) -> web.StreamResponse:
    parent = principal_of(request).role is Role.PARENT
    async with request.app[state.DB]() as session:
        try:
            child = await roster.get_child(session, _id(request, "child_id"))
        except RosterError as exc:
            return error(exc.status, str(exc))
        shown: dict[str, Any] = roster.child_dict(child)
        shown["consents"] = [roster.consent_dict(c) for c in await roster.consents_of(session, child.id)]
        if not parent:
            shown["guardians"] = [
                {"user_id": user.id, "username": user.username, "display_name": user.display_name,
                 "relationship": link.relationship, "revoked": link.revoked_at is not None}
                for link, user in await roster.guardians_of(session, child.id)
            ]  # fmt: skip
            shown["placements"] = [
                {"class_id": p.class_id, "started_at": p.started_at.isoformat(),
                 "ended_at": p.ended_at.isoformat() if p.ended_at else None}
                for p in await roster.placements(session, child.id)
            ]  # fmt: skip
    return web.json_response(shown)


async def move_child(request: web.Request) -> web.StreamResponse:
    try:
        body = await parse(request, MoveBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB].begin() as session:
        try:
            child = await roster.move_child(session, actor_of(request), _id(request, "child_id"), body.class_id)
        except RosterError as exc:
            return error(exc.status, str(exc))
        return web.json_response(roster.child_dict(child))


async def link_guardian(request: web.Request) -> web.StreamResponse:
    try:
        body = await parse(request, GuardianBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    async with request.app[state.DB].begin() as session:
        try:
            await roster.link_guardian(
                session, actor_of(request), _id(request, "child_id"), user_id=body.user_id,
                relationship=body.relationship,
            )  # fmt: skip
        except RosterError as exc:
            return error(exc.status, str(exc))
    return web.json_response({"child_id": _id(request, "child_id"), "user_id": body.user_id}, status=201)


async def revoke_guardian(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB].begin() as session:
        try:
            await roster.revoke_guardian(
                session, actor_of(request), _id(request, "child_id"), _id(request, "guardian_id")
            )
        except RosterError as exc:
            return error(exc.status, str(exc))
    return web.json_response({"revoked": True})


async def record_consent(request: web.Request) -> web.StreamResponse:
    try:
        body = await parse(request, ConsentBody)
    except BadBody as exc:
        return error(exc.status, exc.message)
    actor = actor_of(request)
    given_by = actor.principal.actor if actor.principal.role is Role.PARENT else body.given_by
    async with request.app[state.DB].begin() as session:
        try:
            consent = await roster.record_consent(session, actor, _id(request, "child_id"), given_by=given_by)
        except RosterError as exc:
            return error(exc.status, str(exc))
        return web.json_response(roster.consent_dict(consent), status=201)


async def withdraw_consent(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB].begin() as session:
        try:
            consent = await roster.withdraw_consent(
                session, actor_of(request), _id(request, "child_id"), _id(request, "consent_id")
            )
        except RosterError as exc:
            return error(exc.status, str(exc))
        return web.json_response(roster.consent_dict(consent))


async def my_children(request: web.Request) -> web.StreamResponse:
    async with request.app[state.DB]() as session:
        found = await roster.children_of_parent(session, principal_of(request).user_id)
    return web.json_response({"children": [roster.child_dict(child) for child in found]})


# -- roster import --------------------------------------------------------------------------------------------
async def read_limited(request: web.Request, limit: int | None = None) -> bytes:
    """The request body, refused past `limit` bytes (default: the import's file limit) without reading on."""
    limit = limit or tabular.MAX_FILE_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise BadBody(f"the file is larger than {limit // (1024 * 1024)} MiB: split it", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BadBody(f"the file is larger than {limit // (1024 * 1024)} MiB: split it", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def run_import(
    app: web.Application, data: bytes, filename: str, kind: ImportKind | None, *, dry_run: bool, actor: str,
    address: str | None,
) -> importer.Report:  # fmt: skip
    """Parse (in a thread) and check or apply in one transaction; raises TableError/RosterImportError."""
    table = await asyncio.to_thread(read_table, data, filename)
    async with app[state.DB].begin() as session:
        report = await importer.run(
            session, table, kind, now=app[state.CLOCK].now(), actor=actor, dry_run=dry_run, address=address
        )
        if not dry_run and not report.applied:
            await session.rollback()
    return report


def import_kind(value: str) -> ImportKind | None:
    if not value:
        return None
    try:
        return ImportKind(value)
    except ValueError:
        raise BadBody(f"kind is one of {', '.join(k.value for k in ImportKind)}", 422) from None


async def import_roster(request: web.Request) -> web.StreamResponse:
    try:
        kind = import_kind(request.query.get("kind", ""))
        data = await read_limited(request)
    except BadBody as exc:
        return error(exc.status, exc.message)
    dry_run = request.query.get("dry_run", "false").lower() in ("1", "true", "yes")
    try:
        report = await run_import(
            request.app, data, request.query.get("filename", ""), kind, dry_run=dry_run,
            actor=principal_of(request).actor, address=request.remote,
        )  # fmt: skip
    except (TableError, RosterImportError) as exc:
        return error(400, str(exc))
    if report.error_count:  # the report, with the "error" every 4xx answer has
        shown = {**report.to_dict(), "error": f"{report.error_count} bad rows: nothing applied"}
        return web.json_response(shown, status=422)
    return web.json_response(report.to_dict())


def add_routes(routes: Routes) -> None:
    api = Kind.API
    routes.add("GET", "/api/tokens", list_tokens, Policy(EVERYONE), response=TokensOut)
    routes.add("POST", "/api/tokens", create_token, Policy(EVERYONE), body=NewTokenBody, response=NewTokenOut)
    routes.add("POST", "/api/tokens/{token_id:\\d+}/revoke", revoke_token, Policy(EVERYONE), response=TokenOut)

    routes.add("GET", "/api/users", list_users, Policy(TECHNICIANS), query=UsersQuery, response=UsersOut)
    routes.add("POST", "/api/users", create_user, Policy(TECHNICIANS), body=NewUserBody, response=UserWithPasswordOut)
    routes.add("GET", "/api/users/{user_id:\\d+}", get_user, Policy(TECHNICIANS, api, Scope.USER), response=UserOut)
    routes.add(
        "POST",
        "/api/users/{user_id:\\d+}/role",
        change_role,
        Policy(TECHNICIANS, api, Scope.USER),
        body=RoleBody,
        response=UserOut,
    )
    routes.add(
        "POST",
        "/api/users/{user_id:\\d+}/disable",
        disable_user,
        Policy(TECHNICIANS, api, Scope.USER),
        response=UserOut,
    )
    routes.add(
        "POST", "/api/users/{user_id:\\d+}/enable", enable_user, Policy(TECHNICIANS, api, Scope.USER), response=UserOut
    )
    routes.add(
        "POST",
        "/api/users/{user_id:\\d+}/reset-password",
        reset_password,
        Policy(TECHNICIANS, api, Scope.USER),
        response=UserWithPasswordOut,
    )
    routes.add("GET", "/api/audit", list_audit, Policy(ADMINS), query=AuditQuery, response=AuditPageOut)

    routes.add(
        "GET",
        "/api/units/{unit_id:\\d+}/classes",
        list_classes,
        Policy(SCHOOL_READ, api, Scope.UNIT),
        response=ClassesOut,
    )
    routes.add(
        "POST",
        "/api/units/{unit_id:\\d+}/classes",
        create_class,
        Policy(SCHOOL_WRITE, api, Scope.UNIT),
        body=NewClassBody,
        response=ClassOut,
    )
    routes.add(
        "POST",
        "/api/units/{unit_id:\\d+}/children",
        create_child,
        Policy(SCHOOL_WRITE, api, Scope.UNIT),
        body=NewChildBody,
        response=ChildOut,
    )
    routes.add(
        "GET", "/api/classes/{class_id:\\d+}", get_class, Policy(SCHOOL_READ, api, Scope.CLASS), response=ClassDetailOut
    )
    routes.add(
        "POST",
        "/api/classes/{class_id:\\d+}/staff",
        assign_staff,
        Policy(SCHOOL_WRITE, api, Scope.CLASS),
        body=StaffBody,
        response=StaffAssignedOut,
    )
    routes.add(
        "GET", "/api/children/{child_id:\\d+}", get_child, Policy(CHILD_READ, api, Scope.CHILD), response=ChildDetailOut
    )
    routes.add(
        "POST",
        "/api/children/{child_id:\\d+}/move",
        move_child,
        Policy(SCHOOL_WRITE, api, Scope.CHILD),
        body=MoveBody,
        response=ChildOut,
    )
    routes.add(
        "POST",
        "/api/children/{child_id:\\d+}/guardians",
        link_guardian,
        Policy(SCHOOL_WRITE, api, Scope.CHILD),
        body=GuardianBody,
        response=GuardianLinkedOut,
    )
    routes.add(
        "POST",
        "/api/children/{child_id:\\d+}/guardians/{guardian_id:\\d+}/revoke",
        revoke_guardian,
        Policy(SCHOOL_WRITE, api, Scope.CHILD),
        response=RevokedOut,
    )
    routes.add(
        "POST",
        "/api/children/{child_id:\\d+}/consents",
        record_consent,
        Policy(CONSENT_WRITE, api, Scope.CHILD),
        body=ConsentBody,
        response=ConsentOut,
    )
    routes.add(
        "POST",
        "/api/children/{child_id:\\d+}/consents/{consent_id:\\d+}/withdraw",
        withdraw_consent,
        Policy(CONSENT_WRITE, api, Scope.CHILD),
        response=ConsentOut,
    )
    routes.add("GET", "/api/my/children", my_children, Policy(frozenset({Role.PARENT})), response=ChildrenOut)
    routes.add(
        "POST",
        "/api/import",
        import_roster,
        Policy(ADMINS),
        body="application/octet-stream",
        query=ImportQuery,
        response=ImportReportOut,
    )
