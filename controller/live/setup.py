"""Wiring the live view into the controller's app: the service, its watcher (started on startup, stopped on
shutdown), the wake-up after state-changing requests, and the routes. Call after the media nodes are set up."""

from __future__ import annotations

from aiohttp import web

from controller import state
from controller.live.metrics import LiveMetrics
from controller.live.service import LiveService
from controller.live.watcher import LIVE, WATCHER, Watcher, start_watcher, stop_watcher, wake_after_changes
from controller.medianodes import MEDIA_NODES
from controller.security.access import Routes
from controller.web import live_api, live_pages


def setup(app: web.Application, routes: Routes) -> None:
    metrics = LiveMetrics(app[state.METRICS].registry)
    service = LiveService(app[state.DB], app[state.CLOCK], app[MEDIA_NODES], app[state.HUB], app[state.CONFIG], metrics)
    app[LIVE] = service
    app[WATCHER] = Watcher(service, app[state.CLOCK])
    app.on_startup.append(start_watcher)
    app.on_shutdown.append(stop_watcher)
    app.on_response_prepare.append(wake_after_changes)
    live_api.add_routes(routes)
    live_pages.add_routes(routes)
