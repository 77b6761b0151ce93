"""CORS for WHEP: the parent's page comes from the controller's origin, the media from the node's.

Only the configured origins get CORS headers; a preflight from any other origin is refused (403), so a foreign
page cannot even learn whether a token works. WHIP and the control route are not for browsers: no CORS there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIX = "/whep/"
ALLOW_METHODS = "POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "Location"


def cors_middleware(origins: Collection[str]) -> Middleware:
    allowed = frozenset(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PREFIX):
            return await handler(request)
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            if origin is None or origin not in allowed:
                raise web.HTTPForbidden(text="origin not allowed")
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _decorate(exc, origin, allowed)
            raise
        _decorate(response, origin, allowed)
        return response

    return middleware


def _decorate(response: web.StreamResponse, origin: str | None, allowed: frozenset[str]) -> None:
    if origin is not None and origin in allowed and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response.headers["Vary"] = "Origin"
