"""`POST /control/close`: the controller closes view sessions, meeting participants or whole rooms.

Authenticated with `node_bearer(secret)` (constant-time comparison). Every extension closes what it carries of
the request; the answer counts what was closed. Closing is done before the answer is sent, so the controller
knows that the sessions are gone when it gets `CloseResult` (well within the 5 s the issue allows).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

from aiohttp import web
from pydantic import ValidationError

from media.node.context import NODE
from media.node.extension import NodeExtension
from media.node.guard import error
from protocol.media import CloseRequest, CloseResult, bearer_matches

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
CLOSE_TIMEOUT_S = 4.0


class ControlRoutes:
    def __init__(self, extensions: Sequence[NodeExtension]) -> None:
        self._extensions = extensions

    async def close(self, request: web.Request) -> web.Response:
        node = request.app[NODE]
        if not bearer_matches(request.headers.get("Authorization"), node.secret):
            raise error(401, "the controller's node credential is required")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise error(413, "the close request is too large")
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise error(413, "the close request is too large")
        try:
            wanted = CloseRequest.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise error(400, f"bad close request: {where}: {first['msg']}") from None
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                counts = await asyncio.gather(*(ext.close(wanted) for ext in self._extensions))
        except TimeoutError:
            logger.warning("control: closing took longer than %.0f s; the controller will ask again", CLOSE_TIMEOUT_S)
            raise error(503, "closing took too long; ask again (what was closed stays closed)") from None
        closed = sum(counts)
        node.metrics.control_closed.inc(closed)
        logger.info(
            "control: closed %d (view sessions %d, participants %d, rooms %d asked; reason %r)",
            closed,
            len(wanted.view_sessions),
            len(wanted.participants),
            len(wanted.rooms),
            wanted.reason,
        )
        return web.json_response(json.loads(CloseResult(closed=closed).model_dump_json()))
