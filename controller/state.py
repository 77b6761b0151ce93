"""Typed application state: one web.AppKey per service, set once by `controller.app.build_app`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.clock import Clock
from common.ratelimit import WindowLimiter
from controller.config import ControllerConfig
from controller.security.passwords import Passwords

if TYPE_CHECKING:
    from controller.metrics import Metrics
    from controller.security.access import RoutePolicies
    from controller.uplink.hub import Hub
    from controller.web.render import Renderer

CONFIG: web.AppKey[ControllerConfig] = web.AppKey("config")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
DB: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("db")
SECRET_KEY: web.AppKey[bytes] = web.AppKey("secret_key")
PASSWORDS: web.AppKey[Passwords] = web.AppKey("passwords")
LOGIN_LIMITER: web.AppKey[WindowLimiter] = web.AppKey("login_limiter")
ENROL_LIMITER: web.AppKey[WindowLimiter] = web.AppKey("enrol_limiter")
HUB: web.AppKey[Hub] = web.AppKey("hub")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
POLICIES: web.AppKey[RoutePolicies] = web.AppKey("policies")
RENDERER: web.AppKey[Renderer] = web.AppKey("renderer")
