"""The people API: my API tokens, user administration, the audit log, classes, children, guardians,
consents, and the roster import. Every route goes through `Routes.add` with its policy; most have one shape
(check the input, call a service in a session, answer its dict) and are added by `add_json` from a table of
what differs: method, path, the call, policy, input model, answer model and status.

Errors are {"error": "..."} with a 4xx status. Bodies are JSON objects checked by pydantic (extra fields
refused), except the import, whose body is the file itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Any, TypeVar

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

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
from controller.security.access import (
    ADMINS,
    MAX_ID,
    TECHNICIANS,
    Handler,
    Kind,
    Policy,
    Routes,
    Scope,
    principal_of,
)
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


BadBody = BodyError
"""The people routes' name for `jsonbody.BodyError` (one rule for bodies and queries: see controller.web.jsonbody)."""


async def parse(request: web.Request, model: type[Body]) -> Body:
    return await parse_json(request, model, MAX_JSON_BYTES)


def actor_of(request: web.Request) -> Actor:
    return Actor(principal_of(request), request.remote, request.app[state.CLOCK].now())


def _id(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


# -- the common shape: check the input, call the service, answer --------------------------------------------
Given = TypeVar("Given", bound=BaseModel)
Shown = dict[str, Any]
Call = Callable[[AsyncSession, web.Request, Given], Awaitable[Shown]]
"""What a route of the common shape does: the service call in `session`, given the checked input; the JSON answer."""


class NoInput(_Strict):
    """The input of a route that reads neither a body nor its query string (neither is looked at)."""


class RouteError(Exception):
    """A refusal a route's call decides itself, answered as {"error": message} with `status`."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


REFUSALS = (UserAdminError, RosterError, RouteError)
"""What a call may raise to refuse: each carries the status to answer with, and its message is the error."""


def _session(request: web.Request, write: bool) -> AbstractAsyncContextManager[AsyncSession]:
    db = request.app[state.DB]
    return db.begin() if write else db()


def json_handler(method: str, call: Call[Given], given: type[Given], status: int = 200) -> Handler:
    """The handler of a route of the common shape. A POST reads `given` from its JSON body and calls in a
    transaction; a GET reads it from the query string and calls in a plain session (`NoInput`: nothing is read).
    Input refused: BadBody's status and message. A refusal (REFUSALS) is answered from inside the session, as
    each route did before this shape was shared."""
    write = method == "POST"

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            if given is NoInput:
                wanted = given()
            elif write:
                wanted = await parse(request, given)
            else:
                wanted = parse_query(given, dict(request.query))
        except BadBody as exc:
            return error(exc.status, exc.message)
        async with _session(request, write) as session:
            try:
                shown = await call(session, request, wanted)
            except REFUSALS as exc:
                return error(exc.status, str(exc))
        return web.json_response(shown, status=status)

    handle.__name__ = handle.__qualname__ = getattr(call, "__name__", "handle")
    return handle


def add_json(
    routes: Routes, method: str, path: str, call: Call[Given], policy: Policy, given: type[Given],
    answer: type[BaseModel], status: int = 200,
) -> None:  # fmt: skip
    """Adds a route of the common shape (`json_handler`); OpenAPI documents `given` as the body of a POST or
    the query of a GET, and `answer` as the JSON of a success."""
    documented = None if given is NoInput else given
    body, query = (documented, None) if method == "POST" else (None, documented)
    routes.add(method, path, json_handler(method, call, given, status), policy, body=body, query=query, response=answer)


# -- API tokens ---------------------------------------------------------------------------------------------
async def list_tokens(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    mine = await tokens.list_for(session, principal_of(request).user_id, request.app[state.CLOCK].now())
    return {"tokens": [tokens.token_dict(token) for token in mine]}


async def create_token(request: web.Request) -> web.StreamResponse:
    # Not of the common shape: an API token is refused before the body is read, and TokenError is a 409.
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


async def revoke_token(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    actor = actor_of(request)
    token = await tokens.revoke(session, actor.principal.user_id, _id(request, "token_id"), actor.now)
    if token is None:
        raise RouteError("no such token", 404)
    users.record(session, actor, "token.revoke", f"token:{token.id}")
    return tokens.token_dict(token)


# -- users ----------------------------------------------------------------------------------------------------
async def list_users(session: AsyncSession, request: web.Request, wanted: UsersQuery) -> Shown:
    found = await users.visible_users(session, principal_of(request), search=wanted.q, offset=wanted.offset)
    return {"users": [users.user_dict(user) for user in found]}


async def create_user(session: AsyncSession, request: web.Request, body: NewUserBody) -> Shown:
    user, password = await users.create(
        session, request.app[state.PASSWORDS], actor_of(request), username=body.username, role=body.role,
        unit_id=body.unit_id, display_name=body.display_name,
    )  # fmt: skip
    return {**users.user_dict(user), "password": password}


async def get_user(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    return users.user_dict(await users.get_user(session, actor_of(request), _id(request, "user_id")))


async def change_role(session: AsyncSession, request: web.Request, body: RoleBody) -> Shown:
    user = await users.change_role(
        session, actor_of(request), _id(request, "user_id"), role=body.role, unit_id=body.unit_id
    )
    return users.user_dict(user)


async def disable_user(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    user = await users.set_disabled(session, actor_of(request), _id(request, "user_id"), disabled=True)
    return users.user_dict(user)


async def enable_user(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    user = await users.set_disabled(session, actor_of(request), _id(request, "user_id"), disabled=False)
    return users.user_dict(user)


async def reset_password(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    user, password = await users.reset_password(
        session, request.app[state.PASSWORDS], actor_of(request), _id(request, "user_id")
    )
    return {**users.user_dict(user), "password": password}


# -- audit log ------------------------------------------------------------------------------------------------
def audit_filter(wanted: AuditQuery) -> audit_view.AuditFilter:
    return audit_view.AuditFilter(
        actor=wanted.actor.strip(),
        action=wanted.action.strip(),
        since=wanted.since,
        until=wanted.until,
        before_id=wanted.before_id,
        limit=wanted.limit,
    )


async def list_audit(session: AsyncSession, request: web.Request, wanted: AuditQuery) -> Shown:
    found = await audit_view.page(session, audit_filter(wanted))
    return {"entries": [audit_view.entry_dict(e) for e in found.entries], "next_before_id": found.next_before_id}


# -- classes and children -------------------------------------------------------------------------------------
async def list_classes(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    await roster.school(session, _id(request, "unit_id"))
    found = await roster.classes_of(session, _id(request, "unit_id"))
    return {"classes": [roster.class_dict(klass) for klass in found]}


async def create_class(session: AsyncSession, request: web.Request, body: NewClassBody) -> Shown:
    klass = await roster.create_class(
        session, actor_of(request), _id(request, "unit_id"), school_year=body.school_year, name=body.name
    )
    return roster.class_dict(klass)


async def get_class(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    klass = await roster.get_class(session, _id(request, "class_id"))
    children = await roster.children_of_class(session, klass.id)
    consented = await roster.class_fully_consented(session, klass.id)
    return {
        **roster.class_dict(klass),
        "children": [roster.child_dict(c) for c in children],
        "all_consented": consented,
    }


async def assign_staff(session: AsyncSession, request: web.Request, body: StaffBody) -> Shown:
    await roster.assign_staff(session, actor_of(request), _id(request, "class_id"), body.user_id)
    return {"class_id": _id(request, "class_id"), "user_id": body.user_id}


async def create_child(session: AsyncSession, request: web.Request, body: NewChildBody) -> Shown:
    child = await roster.create_child(
        session, actor_of(request), _id(request, "unit_id"), code=body.code, full_name=body.full_name,
        date_of_birth=body.date_of_birth, class_id=body.class_id,
    )  # fmt: skip
    return roster.child_dict(child)


async def get_child(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    child = await roster.get_child(session, _id(request, "child_id"))
    shown: Shown = roster.child_dict(child)
    shown["consents"] = [roster.consent_dict(c) for c in await roster.consents_of(session, child.id)]
    if principal_of(request).role is not Role.PARENT:
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
    return shown


async def move_child(session: AsyncSession, request: web.Request, body: MoveBody) -> Shown:
    return roster.child_dict(
        await roster.move_child(session, actor_of(request), _id(request, "child_id"), body.class_id)
    )


async def link_guardian(session: AsyncSession, request: web.Request, body: GuardianBody) -> Shown:
    await roster.link_guardian(
        session, actor_of(request), _id(request, "child_id"), user_id=body.user_id, relationship=body.relationship
    )
    return {"child_id": _id(request, "child_id"), "user_id": body.user_id}


async def revoke_guardian(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    await roster.revoke_guardian(session, actor_of(request), _id(request, "child_id"), _id(request, "guardian_id"))
    return {"revoked": True}


async def record_consent(session: AsyncSession, request: web.Request, body: ConsentBody) -> Shown:
    actor = actor_of(request)
    given_by = actor.principal.actor if actor.principal.role is Role.PARENT else body.given_by
    consent = await roster.record_consent(session, actor, _id(request, "child_id"), given_by=given_by)
    return roster.consent_dict(consent)


async def withdraw_consent(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    consent = await roster.withdraw_consent(
        session, actor_of(request), _id(request, "child_id"), _id(request, "consent_id")
    )
    return roster.consent_dict(consent)


async def my_children(session: AsyncSession, request: web.Request, _: NoInput) -> Shown:
    found = await roster.children_of_parent(session, principal_of(request).user_id)
    return {"children": [roster.child_dict(child) for child in found]}


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
    everyone, technicians = Policy(EVERYONE), Policy(TECHNICIANS)
    user = Policy(TECHNICIANS, api, Scope.USER)
    unit_read, unit_write = Policy(SCHOOL_READ, api, Scope.UNIT), Policy(SCHOOL_WRITE, api, Scope.UNIT)
    class_read, class_write = Policy(SCHOOL_READ, api, Scope.CLASS), Policy(SCHOOL_WRITE, api, Scope.CLASS)
    child_read, child_write = Policy(CHILD_READ, api, Scope.CHILD), Policy(SCHOOL_WRITE, api, Scope.CHILD)
    consent = Policy(CONSENT_WRITE, api, Scope.CHILD)

    # routes, method, path, call, policy, input (body or query), answer, status
    add_json(routes, "GET", "/api/tokens", list_tokens, everyone, NoInput, TokensOut)
    routes.add("POST", "/api/tokens", create_token, everyone, body=NewTokenBody, response=NewTokenOut)
    add_json(routes, "POST", "/api/tokens/{token_id:\\d+}/revoke", revoke_token, everyone, NoInput, TokenOut)

    add_json(routes, "GET", "/api/users", list_users, technicians, UsersQuery, UsersOut)
    add_json(routes, "POST", "/api/users", create_user, technicians, NewUserBody, UserWithPasswordOut, 201)
    add_json(routes, "GET", "/api/users/{user_id:\\d+}", get_user, user, NoInput, UserOut)
    add_json(routes, "POST", "/api/users/{user_id:\\d+}/role", change_role, user, RoleBody, UserOut)
    add_json(routes, "POST", "/api/users/{user_id:\\d+}/disable", disable_user, user, NoInput, UserOut)
    add_json(routes, "POST", "/api/users/{user_id:\\d+}/enable", enable_user, user, NoInput, UserOut)
    add_json(
        routes, "POST", "/api/users/{user_id:\\d+}/reset-password", reset_password, user, NoInput, UserWithPasswordOut
    )
    add_json(routes, "GET", "/api/audit", list_audit, Policy(ADMINS), AuditQuery, AuditPageOut)

    add_json(routes, "GET", "/api/units/{unit_id:\\d+}/classes", list_classes, unit_read, NoInput, ClassesOut)
    add_json(routes, "POST", "/api/units/{unit_id:\\d+}/classes", create_class, unit_write, NewClassBody, ClassOut, 201)
    add_json(
        routes, "POST", "/api/units/{unit_id:\\d+}/children", create_child, unit_write, NewChildBody, ChildOut, 201
    )
    add_json(routes, "GET", "/api/classes/{class_id:\\d+}", get_class, class_read, NoInput, ClassDetailOut)
    add_json(
        routes, "POST", "/api/classes/{class_id:\\d+}/staff", assign_staff, class_write, StaffBody, StaffAssignedOut,
        201,
    )  # fmt: skip
    add_json(routes, "GET", "/api/children/{child_id:\\d+}", get_child, child_read, NoInput, ChildDetailOut)
    add_json(routes, "POST", "/api/children/{child_id:\\d+}/move", move_child, child_write, MoveBody, ChildOut)
    add_json(
        routes, "POST", "/api/children/{child_id:\\d+}/guardians", link_guardian, child_write, GuardianBody,
        GuardianLinkedOut, 201,
    )  # fmt: skip
    add_json(
        routes, "POST", "/api/children/{child_id:\\d+}/guardians/{guardian_id:\\d+}/revoke", revoke_guardian,
        child_write, NoInput, RevokedOut,
    )  # fmt: skip
    add_json(
        routes, "POST", "/api/children/{child_id:\\d+}/consents", record_consent, consent, ConsentBody, ConsentOut, 201
    )
    add_json(
        routes, "POST", "/api/children/{child_id:\\d+}/consents/{consent_id:\\d+}/withdraw", withdraw_consent,
        consent, NoInput, ConsentOut,
    )  # fmt: skip
    add_json(routes, "GET", "/api/my/children", my_children, Policy(frozenset({Role.PARENT})), NoInput, ChildrenOut)
    routes.add(
        "POST",
        "/api/import",
        import_roster,
        Policy(ADMINS),
        body="application/octet-stream",
        query=ImportQuery,
        response=ImportReportOut,
    )
