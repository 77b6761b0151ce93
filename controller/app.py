"""Building the controller's aiohttp application: state, middlewares, routes and owned background work."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from sqlalchemy import update
from sqlalchemy.pool import QueuePool

from common.clock import Clock, SystemClock
from common.ratelimit import WindowLimiter
from controller import state
from controller.config import ControllerConfig, load_secret_key
from controller.db import sqlite_writer
from controller.db.engine import create_engine, session_factory
from controller.db.migrate import upgrade
from controller.db.models import Agent
from controller.live import setup as live_setup
from controller.medianodes import routes as medianodes_routes
from controller.medianodes.service import MediaNodes
from controller.meetings import routes as meeting_routes
from controller.metrics import CONTENT_TYPE, Metrics
from controller.security import sessions
from controller.security.access import SESSION_READER, Handler, Routes, access_middleware, public
from controller.security.passwords import Passwords
from controller.sso import routes as sso_routes
from controller.uplink import metrics_proxy
from controller.uplink.hub import Hub
from controller.uplink.sweeper import sweeper_ctx
from controller.web import admin_pages, api, booking_pages, bookings_api, calendar_routes, openapi, pages, people_api
from controller.web.render import Renderer, security_headers

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "web" / "static"


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.StreamResponse:
    """Aggregate figures only (no ids, names or addresses), for clients in `metrics_networks`."""
    remote = request.remote or ""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return web.json_response({"error": "metrics are not served to this address"}, status=403)
    allowed = request.app[state.CONFIG].metrics_networks
    if not any(address in ipaddress.ip_network(net, strict=False) for net in allowed):
        return web.json_response({"error": "metrics are not served to this address"}, status=403)
    registry = request.app[state.METRICS]
    async with request.app[state.DB]() as session:
        await registry.refresh(session)
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE})


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api, aiohttp's own errors (404, 405, 413) come back as {"error": ...} too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400 or exc.content_type == "application/json":
            raise
        return web.json_response({"error": exc.reason.lower()}, status=exc.status)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Migrate at start; agents connected to an earlier run are offline until they say hello again."""
    engine = app[state.ENGINE]
    await upgrade(engine)
    async with app[state.DB].begin() as session:
        await session.execute(update(Agent).where(Agent.online.is_(True)).values(online=False))
    yield
    await app[state.HUB].drain()
    await engine.dispose()


async def _start_reader(app: web.Application) -> None:
    """on_startup, after the cleanup contexts (the database is migrated by then)."""
    await app[SESSION_READER].start()


async def _stop_reader(app: web.Application) -> None:
    await app[SESSION_READER].close()


async def _warm(app: web.Application) -> None:
    """on_startup, last: open every connection of the pool at once and run the per-request session lookup on
    each (asyncpg prepares it per connection), and prepare the reader's and writer's statements, so the first
    requests do not pay tens of milliseconds each for a connection and its statements."""
    engine = app[state.ENGINE]
    size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
    now = app[state.CLOCK].now()
    config = app[state.CONFIG]

    async def one() -> None:
        async with app[state.DB]() as session:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            await sessions.resolve(session, "warm-up", now, config)  # no such session: a read only

    await asyncio.gather(*(one() for _ in range(size)))
    reader = app.get(SESSION_READER)
    if reader is not None:
        await reader.run(functools.partial(sessions.lookup_sqlite, ""))
    await bookings_api.warm(app)


async def _close_links(app: web.Application) -> None:
    await app[state.HUB].close_all("the controller is shutting down")


def build_app(
    config: ControllerConfig,
    *,
    clock: Clock | None = None,
    passwords: Passwords | None = None,
    secret_key: bytes | None = None,
) -> web.Application:
    """The application; call before the event loop serves (it reads the key file and templates once)."""
    clock = clock or SystemClock()
    app = web.Application(middlewares=[security_headers, json_errors, access_middleware], client_max_size=1024**2)
    app[state.CONFIG] = config
    app[state.CLOCK] = clock
    engine = create_engine(config.effective_database_url, config.database_schema)
    app[state.ENGINE] = engine
    app[state.DB] = session_factory(engine)
    app[state.SECRET_KEY] = secret_key if secret_key is not None else load_secret_key(config.effective_secret_key_file)
    app[state.PASSWORDS] = passwords or Passwords()
    app[state.LOGIN_LIMITER] = WindowLimiter(clock, config.login_attempts_per_minute, 60.0)
    app[state.ENROL_LIMITER] = WindowLimiter(clock, config.enrol_attempts_per_minute, 60.0)
    app[state.HUB] = Hub()
    app[state.METRICS] = Metrics()
    app[state.POLICIES] = {}
    app[state.RENDERER] = Renderer()
    routes = Routes(app)
    routes.add("GET", "/healthz", healthz, public())
    routes.add("GET", "/metrics", metrics, public())
    routes.static("/static/", str(STATIC))
    pages.add_routes(routes)
    sso_routes.setup(app, routes)
    api.add_routes(routes)
    people_api.add_routes(routes)
    admin_pages.add_routes(routes)
    bookings_api.setup(app, routes)
    calendar_routes.setup(app, routes)
    medianodes_routes.setup(app, routes, MediaNodes.from_config(config, clock))
    meeting_routes.setup(app, routes)
    live_setup.setup(app, routes)
    metrics_proxy.setup(app, routes)
    openapi.add_routes(routes)
    booking_pages.add_routes(routes)
    app.cleanup_ctx.append(database_ctx)
    reader = sqlite_writer.for_engine(engine, read_only=True)
    if reader is not None:  # SQLite: the cookie-session lookup in one hop (controller.security.access)
        app[SESSION_READER] = reader
        app.on_startup.append(_start_reader)
        app.on_cleanup.append(_stop_reader)
    app.cleanup_ctx.append(sweeper_ctx)
    app.on_startup.append(_warm)
    app.on_shutdown.append(_close_links)
    return app
