"""The media node's aiohttp application: the core routes and the extensions (camera relays, meeting rooms).

`build_app()` wires the shared context (tokens, replay guard, rate limit, metrics), the CORS middleware for WHEP,
`/healthz`, `/metrics`, `POST /control/close`, the load reporter (a cleanup_ctx task), and every extension's
routes. Extensions are listed in `default_extensions()`: a new part of the node (meeting rooms: `media.rooms`)
adds itself there and implements `media.node.extension.NodeExtension`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from common.clock import Clock, SystemClock
from common.ratelimit import WindowLimiter
from media.node.config import NodeConfig
from media.node.context import NODE, NodeContext
from media.node.control import ControlRoutes
from media.node.cors import cors_middleware
from media.node.extension import ExtensionLoad, NodeExtension
from media.node.liveview import LiveView
from media.node.metrics import CONTENT_TYPE, NodeMetrics
from media.node.reporter import VERSION, Reporter
from media.rooms.extension import Meetings, MeetingSettings
from protocol.media import CONTROL_CLOSE_PATH, MediaTokens, ReplayGuard
from protocol.meeting import Codec
from rtc.aiortc_adapter import LoopbackCandidates, set_loopback_candidates

logger = logging.getLogger(__name__)

EXTENSIONS = web.AppKey("media_extensions", list[NodeExtension])
REPORTER = web.AppKey("media_reporter", Reporter)
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def default_extensions(config: NodeConfig) -> list[NodeExtension]:
    """The parts of a node: camera relays and meeting rooms."""
    settings = MeetingSettings(codec=Codec(config.meeting_codec), max_video=config.meeting_max_video)
    return [LiveView(config), Meetings(settings)]


def build_app(
    config: NodeConfig,
    secret: bytes,
    *,
    clock: Clock | None = None,
    extensions: Sequence[NodeExtension] | None = None,
) -> web.Application:
    clock = clock or SystemClock()
    if config.loopback_candidates:
        set_loopback_candidates(LoopbackCandidates.ONLY)  # process-wide: the demo and tests, on one machine
    exts: list[NodeExtension] = list(extensions) if extensions is not None else default_extensions(config)

    def load() -> ExtensionLoad:
        total = ExtensionLoad()
        for ext in exts:
            total = total.add(ext.load())
        return total

    metrics = NodeMetrics(load)
    node = NodeContext(
        config=config,
        clock=clock,
        secret=secret,
        tokens=MediaTokens(secret, clock),
        replay=ReplayGuard(clock),
        limiter=WindowLimiter(clock, config.token_requests_per_minute),
        metrics=metrics,
        load=load,
    )
    app = web.Application(middlewares=[cors_middleware(config.cors_origins)], client_max_size=MAX_REQUEST_BYTES)
    app[NODE] = node
    app[EXTENSIONS] = exts
    reporter = Reporter(config, secret, load, metrics, clock)
    app[REPORTER] = reporter

    async def healthz(request: web.Request) -> web.Response:
        current = load()
        return web.json_response(
            {
                "status": "ok",
                "node_id": config.node_id,
                "version": VERSION,
                "relays": current.relays,
                "rooms": current.rooms,
                "publishers": current.publishers,
                "viewers": current.subscribers,
                "reports_sent": reporter.sent,
            }
        )

    async def metrics_route(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_route)
    app.router.add_post(CONTROL_CLOSE_PATH, ControlRoutes(exts).close)
    for ext in exts:
        ext.setup(app, node)
    app.cleanup_ctx.append(_lifetime)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    """The reporter runs while the app serves (when a controller is configured); extensions close at the end."""
    node = app[NODE]
    task: asyncio.Task[None] | None = None
    if node.config.controller_url:
        task = asyncio.create_task(app[REPORTER].run(), name="media-reporter")
    else:
        logger.warning("no controller_url: this node sends no load reports")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for ext in app[EXTENSIONS]:
            try:
                await ext.shutdown()
            except Exception:
                logger.exception("closing %s failed", ext.name)
