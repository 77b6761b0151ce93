"""The meeting page and its token route.

- `GET /join/{token}` (the join page, controller.web.calendar_routes) becomes the meeting page while the session
  is open (`open_session`): from `meeting_entry_margin_minutes` before the start until the end. Outside that
  window the join page says when the session is.
- `POST /api/meetings/join` `{token, name}`: public (the join token is the credential), same-origin only; answers
  `protocol.meeting.JoinInfo` (the node's WebSocket URL, a meeting token valid `media_token_ttl_s`, ICE servers
  with TURN credentials) or `{"error", "reason", "starts_at", "ends_at", "opens_at"}` with 403 (a bad link, too
  early: `too_early`, over: `over`) or 503 (`no_media_node`).

The page's Content-Security-Policy allows its own script and WebSocket connections to the node the session is
placed on, and nothing else.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller import state
from controller.meetings import service
from controller.meetings.service import MeetingRefused
from controller.meetings.texts import TEXTS, page_texts
from controller.security.access import Routes, public
from controller.web.calendar_routes import JOIN_HOOK
from controller.web.i18n import language

logger = logging.getLogger(__name__)

MAX_BODY = 8 * 1024


class JoinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str = Field(min_length=16, max_length=2048, description="the join link's token (the last path part)")
    name: str = Field(default="", max_length=40, description="a name to show next to the room's name")


def _csp(node_origin: str) -> str:
    connect = f"'self' {node_origin}" if node_origin else "'self'"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src {connect}; media-src 'self' blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


async def open_session(request: web.Request, token: str) -> web.StreamResponse | None:
    """The meeting page when the link's session is open now; None to let the join page explain the link."""
    try:
        admission = await service.admit(request.app, token)
    except MeetingRefused:
        return None
    lang = language(request)
    renderer = request.app[state.RENDERER]
    texts = page_texts(lang)
    zone = admission.detail.time_zones.get(admission.room.unit_id, admission.detail.booking.time_zone)
    session = {
        "title": admission.detail.booking.title,
        "room": admission.room.name,
        "role": TEXTS[f"role_{admission.claims.role.value}"][1 if lang == "en" else 0],
        "role_code": admission.claims.role.value,
        "class_mode": admission.class_mode,
        "start": service.local(admission.window.starts_at, zone),
        "end": service.local(admission.window.ends_at, zone)[-5:],
        "zone": zone,
    }
    try:
        origin = service.node_origin(service.place(request.app, admission))
        problem = ""
    except MeetingRefused:
        # Still the page (its lobby); joining asks again, and a reload once a node reports allows its origin.
        origin, problem = "", texts["no_node"]
    response = renderer.render(
        request, "meeting.html", texts=texts, session=session, problem=problem,
        texts_json=json.dumps(texts, ensure_ascii=False).replace("<", "\\u003c"),
    )  # fmt: skip
    response.headers["Content-Security-Policy"] = _csp(origin)
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(self), display-capture=(self)"
    return response


async def join(request: web.Request) -> web.StreamResponse:
    """A meeting token for the node carrying the session a join link opens now."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return web.json_response({"error": "the request is too large"}, status=413)
    try:
        body = JoinRequest.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return web.json_response({"error": f"{where}: {first['msg']}"}, status=422)
    try:
        admission = await service.admit(request.app, body.token)
        node = service.place(request.app, admission)
    except MeetingRefused as refused:
        answer: dict[str, Any] = {"error": str(refused), "reason": refused.reason}
        if refused.window is not None:
            answer |= {
                "starts_at": refused.window.starts_at.isoformat(),
                "ends_at": refused.window.ends_at.isoformat(),
                "opens_at": refused.window.opens_at.isoformat(),
            }
        return web.json_response(answer, status=refused.status)
    info = service.join_info(request.app, admission, node, body.name)
    logger.info(
        "meeting %s: token for node %s as %s (link %s)",
        admission.room_name, node.node_id, admission.claims.role.value, admission.claims.token_id[:8],
    )  # fmt: skip
    return web.json_response(info.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


def setup(app: web.Application, routes: Routes) -> None:
    app[JOIN_HOOK] = open_session
    routes.add(
        "POST", "/api/meetings/join", join, public(check_origin=True), body=JoinRequest,
        summary="A meeting token for the media node carrying the session a join link opens now",
    )  # fmt: skip
