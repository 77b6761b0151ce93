"""One access mechanism for every route: a policy recorded when the route is added, enforced by a middleware.

`Routes.add(method, path, handler, policy)` is the only way routes are added; the middleware looks the matched
route up and refuses what its policy does not allow. A route that somehow has no policy is refused (fail
closed). Policies say who (roles; None = no session needed: the route authenticates otherwise or is public),
which unit the target belongs to (for scope), and whether the route is a page (anonymous callers are sent to
sign in) or API (401 JSON). State-changing requests from a cookie session must pass the CSRF checks.
"""

from __future__ import annotations

import enum
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller import state
from controller.bookings import scopes as booking_scopes
from controller.db.models import Agent, Camera, Role
from controller.db.sqlite_writer import SqliteWriter
from controller.people import scopes as people_scopes
from controller.people import tokens as api_tokens
from controller.security import sessions
from controller.security.sessions import Principal
from controller.security.tokens import same, sha256_hex
from controller.units import is_within, parents
from controller.web.i18n import language, translate

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
SESSION_READER: web.AppKey[SqliteWriter] = web.AppKey("session_reader", SqliteWriter)
"""SQLite only: a reader thread for the cookie-session lookup (set and started by controller.app)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
MAX_ID = 2**31 - 1
"""Ids in paths are 32-bit (PostgreSQL integer); a larger one is no such item."""


class Scope(enum.Enum):
    NONE = "none"
    """No single target: the handler lists only what the caller may see."""
    UNIT = "unit_id"
    AGENT = "agent_id"
    CAMERA = "camera_id"
    CLASS = "class_id"
    CHILD = "child_id"
    """A child: staff by the child's school; a parent only as the child's active guardian."""
    USER = "user_id"
    ROOM = "room_id"
    BOOKING = "booking_id"
    """A booking: by its host room's unit."""


class Kind(enum.Enum):
    PAGE = "page"
    API = "api"


@dataclass(frozen=True)
class Policy:
    roles: frozenset[Role] | None
    """Roles allowed; None: no session needed (public, or authenticated by code or token in the handler)."""
    kind: Kind = Kind.API
    scope: Scope = Scope.NONE
    check_origin: bool = False
    """For session-less POSTs from browsers (sign-in): the Origin must be ours (login CSRF)."""
    may_revoke: bool = True
    """Whether a change through this route can take a right away (a guardianship, a camera, a viewing window, a
    user): after one, the live-view watcher re-checks open views at once. Rooms and bookings never do."""


TECHNICIANS = frozenset({Role.ADMIN, Role.DISTRICT_TECHNICIAN})
ADMINS = frozenset({Role.ADMIN})


def public(kind: Kind = Kind.API, *, check_origin: bool = False) -> Policy:
    return Policy(roles=None, kind=kind, check_origin=check_origin)


@dataclass(frozen=True)
class RouteDoc:
    """What the OpenAPI document says of a route beyond its policy (controller.web.openapi)."""

    summary: str = ""
    body: type[BaseModel] | str | None = None
    """The pydantic model the handler parses from a JSON body, or the media type of a raw body (a file)."""
    query: type[BaseModel] | None = None
    """A model whose fields are the query parameters."""
    response: type[BaseModel] | None = None
    """A model describing the JSON of a successful answer (documentation: the handler builds the JSON)."""
    errors: tuple[int, ...] = ()
    """Error statuses the handler itself may answer with, beyond those the policy implies (e.g. 503)."""


RoutePolicies = dict[AbstractRoute, Policy]
ROUTE_DOCS: web.AppKey[dict[AbstractRoute, RouteDoc]] = web.AppKey("route_docs", dict)
_PEOPLE_SCOPES: dict[Scope, people_scopes.UnitOf] = {
    Scope.CLASS: people_scopes.unit_of_class,
    Scope.CHILD: people_scopes.unit_of_child,
    Scope.USER: people_scopes.unit_of_user,
    Scope.ROOM: booking_scopes.unit_of_room,
    Scope.BOOKING: booking_scopes.unit_of_booking,
}


class Routes:
    """Adds routes to an app together with their policy."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._policies = app[state.POLICIES]
        self._docs = app.setdefault(ROUTE_DOCS, {})

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        policy: Policy,
        *,
        summary: str = "",
        body: type[BaseModel] | str | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        errors: tuple[int, ...] = (),
    ) -> None:
        route = self._app.router.add_route(method, path, handler)
        self._policies[route] = policy
        summary = summary or (handler.__doc__ or "").strip().split("\n")[0]
        self._docs[route] = RouteDoc(summary, body, query, response, errors)

    def static(self, prefix: str, directory: str) -> None:
        resource = self._app.router.add_static(prefix, directory, follow_symlinks=False)
        for route in resource:
            self._policies[route] = public(Kind.PAGE)


def _refuse(policy: Policy, request: web.Request, status: int) -> web.StreamResponse:
    if status == 401 and policy.kind is Kind.PAGE:
        target = request.rel_url.path_qs if request.method == "GET" else "/"
        raise web.HTTPFound(f"/signin?next={quote(target, safe='/')}")
    message = {
        401: "sign in first",
        403: "you are not allowed to do this",
    }[status]
    if policy.kind is Kind.API:
        return web.json_response({"error": message}, status=status)
    text = translate("forbidden", language(request))
    return request.app[state.RENDERER].render(request, "message.html", status=status, message=text)


def origin_ok(request: web.Request) -> bool:
    """True when Origin (or, without it, Referer) is the configured public URL's origin."""
    expected = urlsplit(request.app[state.CONFIG].effective_public_url)
    expected_origin = f"{expected.scheme}://{expected.netloc}".lower()
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        referer = request.headers.get("Referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.lower() == expected_origin


async def _csrf_ok(request: web.Request, principal: Principal) -> bool:
    if not origin_ok(request):
        return False
    supplied = request.headers.get(CSRF_HEADER)
    if supplied is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        supplied = value if isinstance(value, str) else None
    return supplied is not None and same(supplied, principal.csrf_token)


async def _target_unit(session: AsyncSession, scope: Scope, raw: str) -> int | None:
    try:
        target = int(raw)
    except ValueError:
        return None
    if scope is Scope.UNIT:
        return target
    people = _PEOPLE_SCOPES.get(scope)
    if people is not None:
        return await people(session, target)
    if scope is Scope.AGENT:
        return (await session.execute(select(Agent.unit_id).where(Agent.id == target))).scalar_one_or_none()
    query = select(Agent.unit_id).join(Camera, Camera.agent_id == Agent.id).where(Camera.id == target)
    return (await session.execute(query)).scalar_one_or_none()


async def in_scope(session: AsyncSession, principal: Principal, unit_id: int | None) -> bool:
    """Admins see everything; a scoped role (district technician, department booker, school staff, teacher) sees
    its unit and what is under it; a parent has no unit scope (only their children: Scope.CHILD)."""
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.PARENT or principal.unit_id is None or unit_id is None:
        return False
    return is_within(await parents(session), unit_id, principal.unit_id)


def _by_role(policy: Policy, principal: Principal) -> int | None:
    """403 when the policy does not admit the principal's role (the whole decision for a route without scope)."""
    return None if policy.roles is not None and principal.role in policy.roles else 403


async def _decide(session: AsyncSession, policy: Policy, principal: Principal, request: web.Request) -> int | None:
    """None when the principal may go on; otherwise the status to refuse with."""
    refused = _by_role(policy, principal)
    if refused is not None or policy.scope is Scope.NONE:
        return refused
    if principal.role is Role.PARENT:
        child = request.match_info.get(Scope.CHILD.value, "")
        if policy.scope is not Scope.CHILD or not child.isdigit():
            return 403
        return None if await people_scopes.is_guardian(session, principal.user_id, int(child)) else 403
    unit_id = await _target_unit(session, policy.scope, request.match_info.get(policy.scope.value, ""))
    if unit_id is None and principal.role is Role.ADMIN:
        return 404
    return None if await in_scope(session, principal, unit_id) else 403


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    policy = request.app[state.POLICIES].get(route)
    if policy is None:
        if route.resource is None:  # no route matched: let aiohttp answer 404/405
            return await handler(request)
        logger.error("route %s %s has no access policy: refused", request.method, route.resource.canonical)
        return web.json_response({"error": "this route is not configured"}, status=403)
    if any(value.isdigit() and int(value) > MAX_ID for value in request.match_info.values()):
        return _not_found(policy)  # no row has such an id, and the database would refuse the number
    if policy.roles is None:
        if policy.check_origin and request.method not in SAFE_METHODS and not origin_ok(request):
            return _forbidden_origin(policy)
        return await handler(request)
    authorization = request.headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        return await _with_api_token(request, handler, policy, authorization[7:].strip())
    config = request.app[state.CONFIG]
    token = request.cookies.get(sessions.cookie_name(config))
    if not token:
        return _refuse(policy, request, 401)
    now = request.app[state.CLOCK].now()
    known, principal = await _read_session(request, token, policy, now)
    if known:
        status = None if principal is None else _by_role(policy, principal)
    else:
        async with request.app[state.DB]() as session:
            # Autocommit: each statement stands alone (a lookup, maybe the throttled last_seen write or an
            # expired session's deletion), so no BEGIN/COMMIT round trips on every request. Decide first.
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            principal = await sessions.resolve(session, token, now, config)
            status = None if principal is None else await _decide(session, policy, principal, request)
            await session.commit()
    if principal is None:
        return _refuse(policy, request, 401)
    if status == 404:
        return _not_found(policy)
    if status is not None:
        return _refuse(policy, request, status)
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, principal):
        logger.info("CSRF check failed for %s %s by %s", request.method, request.path, principal.username)
        return _forbidden_origin(policy)
    request[PRINCIPAL] = principal
    return await handler(request)


async def _read_session(
    request: web.Request, token: str, policy: Policy, now: datetime
) -> tuple[bool, Principal | None]:
    """SQLite: the session looked up in one hop to the reader thread (`SESSION_READER`), for a route without a
    scope to check. (True, principal or None) when that settles it; (False, None) when the SQLAlchemy path must
    run: another backend, a scoped route, or a write due (an expired session's deletion, `last_seen`)."""
    reader = request.app.get(SESSION_READER)
    if reader is None or policy.scope is not Scope.NONE:
        return False, None
    found = await reader.run(functools.partial(sessions.lookup_sqlite, sha256_hex(token)))
    if found is None:
        return True, None
    if found.due(now, request.app[state.CONFIG]):
        return False, None
    return True, found.principal()


async def _with_api_token(request: web.Request, handler: Handler, policy: Policy, secret: str) -> web.StreamResponse:
    """An API token: API routes only (never a page), no CSRF check (no cookie is involved)."""
    if policy.kind is not Kind.API:
        return web.json_response({"error": "API tokens are accepted by the API only"}, status=401)
    async with request.app[state.DB].begin() as session:
        principal = await api_tokens.resolve(session, secret, request.app[state.CLOCK].now())
        status = None if principal is None else await _decide(session, policy, principal, request)
    if principal is None:
        return web.json_response({"error": "unknown, expired or revoked API token"}, status=401)
    if status == 404:
        return _not_found(policy)
    if status is not None:
        return _refuse(policy, request, status)
    request[PRINCIPAL] = principal
    return await handler(request)


def _not_found(policy: Policy) -> web.StreamResponse:
    if policy.kind is Kind.API:
        return web.json_response({"error": "no such item"}, status=404)
    return web.Response(status=404, text="not found")


def _forbidden_origin(policy: Policy) -> web.StreamResponse:
    message = "cross-site request refused: wrong origin or missing CSRF token"
    if policy.kind is Kind.API:
        return web.json_response({"error": message}, status=403)
    return web.Response(status=403, text=message)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]
