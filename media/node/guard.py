"""The checks in front of every token endpoint: rate limit, size limit, bearer token, single use.

A refusal is counted (`ketnoi_media_token_refusals_total{endpoint,reason}`) and answered with a JSON body that
says what was wrong: 401 when the token is missing, damaged or expired (get a new one), 403 when it is valid
but not for this node, purpose or room, or was used before; 429 over the per-address rate. The token itself is
never logged.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from media.node.context import NodeContext
from protocol.media import MediaClaims, TokenKind, TokenRefused

logger = logging.getLogger(__name__)

SDP_TYPE = "application/sdp"
_UNAUTHENTICATED = {"missing", "tampered", "expired", "not_yet_valid"}


_ERRORS: dict[int, type[web.HTTPException]] = {
    cls.status_code: cls
    for cls in (
        web.HTTPBadRequest,
        web.HTTPUnauthorized,
        web.HTTPForbidden,
        web.HTTPNotFound,
        web.HTTPConflict,
        web.HTTPUnsupportedMediaType,
        web.HTTPTooManyRequests,
        web.HTTPServiceUnavailable,
    )
}


def error(status: int, message: str, reason: str = "", headers: dict[str, str] | None = None) -> web.HTTPException:
    """An HTTP error with a JSON body `{"error": message, "reason": reason}`."""
    body = json.dumps({"error": message, "reason": reason} if reason else {"error": message})
    if status == web.HTTPRequestEntityTooLarge.status_code:
        return web.HTTPRequestEntityTooLarge(
            max_size=0, actual_size=0, text=body, content_type="application/json", headers=headers
        )
    return _ERRORS[status](text=body, content_type="application/json", headers=headers)


def rate_limit(request: web.Request, node: NodeContext, endpoint: str) -> None:
    if not node.limiter.allow(request.remote or "?"):
        node.metrics.refused(endpoint, "rate_limited")
        raise error(429, "too many requests from this address; try again in a minute", "rate_limited",
                    {"Retry-After": "60"})  # fmt: skip


def authorize(
    request: web.Request, node: NodeContext, endpoint: str, kind: TokenKind, room: str, *, single_use: bool
) -> MediaClaims:
    """The token's claims, or a counted refusal (raised as an HTTP error)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[len("Bearer ") :].strip():
        node.metrics.refused(endpoint, "missing")
        raise error(401, "a Bearer token from the controller is required", "missing",
                    {"WWW-Authenticate": 'Bearer realm="ketnoi-media"'})  # fmt: skip
    token = header[len("Bearer ") :].strip()
    try:
        claims = node.tokens.verify(token, node=node.config.node_id, kind=kind, room=room)
        if single_use:
            node.replay.use(claims)
    except TokenRefused as exc:
        node.metrics.refused(endpoint, exc.reason)
        logger.info("%s %s: token refused (%s) from %s", endpoint, room, exc.reason, request.remote)
        status = 401 if exc.reason in _UNAUTHENTICATED else 403
        headers = {"WWW-Authenticate": 'Bearer realm="ketnoi-media", error="invalid_token"'} if status == 401 else None
        raise error(status, str(exc), exc.reason, headers) from None
    return claims


async def read_sdp(request: web.Request, node: NodeContext) -> str:
    """The SDP offer in the body: application/sdp, at most `max_sdp_bytes`, text that looks like SDP."""
    if request.content_type != SDP_TYPE:
        raise error(415, f"the body must be {SDP_TYPE}")
    limit = node.config.max_sdp_bytes
    if request.content_length is not None and request.content_length > limit:
        raise error(413, f"the SDP offer is larger than {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise error(413, f"the SDP offer is larger than {limit} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise error(400, "the SDP offer is not UTF-8 text") from None
    if not text.startswith("v=0"):
        raise error(400, "the body is not an SDP offer (it must start with v=0)")
    return text
