"""The holds routes of the agent's local API (same bearer token as the recordings API):

    GET    /api/cameras/{camera}/holds                                                the held ranges
    POST   /api/cameras/{camera}/holds   {"start": ..., "end": ..., "reason": "..."}  hold the range's segments
    DELETE /api/cameras/{camera}/holds   {"start": ..., "end": ...}                   release them

Times are ISO 8601 with a UTC offset. The answer says how many segments changed. Held segments are never
deleted by retention (see retention.py); segments recorded later inside a held range are held as they are
written (see holds.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from agents.recording.cameras import SAFE_ID
from agents.recording.token import matches
from agents.storage import holds

logger = logging.getLogger(__name__)

MAX_BODY = 4096


def problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def unauthorized() -> web.Response:
    response = problem(401, "a valid bearer token is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="ketnoi-agent"'
    return response


class HoldRoutes:
    """`add_routes(app)` mounts the two routes; each checks the token itself."""

    def __init__(self, index: holds.HoldStore, token: str) -> None:
        self._index = index
        self._token = token

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/cameras/{camera}/holds", self.listing)
        app.router.add_post("/api/cameras/{camera}/holds", self.place)
        app.router.add_delete("/api/cameras/{camera}/holds", self.release)

    async def listing(self, request: web.Request) -> web.Response:
        if not matches(self._token, request.headers.get("Authorization")):
            return unauthorized()
        camera = request.match_info["camera"]
        if SAFE_ID.fullmatch(camera) is None:
            return problem(400, "not a camera id")
        ranges = await self._index.holds(camera)
        return web.json_response(
            {"camera": camera, "holds": [{"start": a.isoformat(), "end": b.isoformat()} for a, b in ranges]}
        )

    async def place(self, request: web.Request) -> web.Response:
        return await self._apply(request, held=True)

    async def release(self, request: web.Request) -> web.Response:
        return await self._apply(request, held=False)

    async def _apply(self, request: web.Request, *, held: bool) -> web.Response:
        if not matches(self._token, request.headers.get("Authorization")):
            return unauthorized()
        camera = request.match_info["camera"]
        if SAFE_ID.fullmatch(camera) is None:
            return problem(400, "not a camera id")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return problem(413, f"the body is larger than {MAX_BODY} bytes")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return problem(413, f"the body is larger than {MAX_BODY} bytes")
        try:
            data: Any = json.loads(raw or b"null")
            hold = holds.HoldRequest.model_validate(data)
        except json.JSONDecodeError:
            return problem(400, "the body is not JSON")
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            return problem(400, details)
        changed = await (holds.place if held else holds.release)(self._index, camera, hold)
        return web.json_response(
            {
                "camera": camera,
                "start": hold.start.isoformat(),
                "end": hold.end.isoformat(),
                "held": held,
                "segments": changed,
            }
        )
