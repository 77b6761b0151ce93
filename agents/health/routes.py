"""The snapshot route of the agent's local API (same bearer token as the recordings API):

    GET /api/cameras/{camera}/snapshot   the camera's latest sampled keyframe as a JPEG (404 before the first)

The file is read by camera id (never a path from the request) from the snapshot directory, where the image
health worker replaces it atomically.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from agents.health.monitor import ImageHealth
from agents.recording.cameras import SAFE_ID
from agents.recording.token import matches
from agents.storage.routes import problem, unauthorized


class SnapshotRoutes:
    def __init__(self, health: ImageHealth, token: str) -> None:
        self._health = health
        self._token = token

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/cameras/{camera}/snapshot", self.snapshot)

    async def snapshot(self, request: web.Request) -> web.Response:
        if not matches(self._token, request.headers.get("Authorization")):
            return unauthorized()
        camera = request.match_info["camera"]
        if SAFE_ID.fullmatch(camera) is None:
            return problem(400, "not a camera id")
        jpeg = await asyncio.to_thread(self._health.snapshot, camera)
        if jpeg is None:
            return problem(404, "no snapshot of this camera yet")
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})
