"""Marks agents offline when they have been silent longer than the offline timeout (and drops their link)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from sqlalchemy import or_, update

from controller import state
from controller.db.models import Agent
from controller.uplink.server import close_for

logger = logging.getLogger(__name__)


async def sweep(app: web.Application) -> list[int]:
    """One pass; returns the agents it marked offline."""
    cutoff = app[state.CLOCK].now() - timedelta(seconds=app[state.CONFIG].agent_offline_timeout_s)
    async with app[state.DB].begin() as session:
        silent = list(
            (
                await session.execute(
                    update(Agent)
                    .where(Agent.online.is_(True), or_(Agent.last_seen.is_(None), Agent.last_seen < cutoff))
                    .values(online=False)
                    .returning(Agent.id)
                )
            ).scalars()
        )
    for agent_id in silent:
        logger.info("agent %s: silent for too long, now offline", agent_id)
        await close_for(app, agent_id, "no message within the offline timeout")
    return silent


def interval(app: web.Application) -> float:
    return max(0.5, min(10.0, app[state.CONFIG].agent_offline_timeout_s / 3))


async def _loop(app: web.Application) -> None:
    clock = app[state.CLOCK]
    while True:
        await clock.sleep(interval(app))
        try:
            await sweep(app)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("offline sweep failed; trying again")


async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx: the sweeper runs while the app does."""
    task = asyncio.create_task(_loop(app), name="agent-offline-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
