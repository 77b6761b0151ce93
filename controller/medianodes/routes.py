"""`POST NODE_REPORT_PATH`: a media node's periodic report (Bearer `node_bearer(media secret)`).

The route is public to the access middleware (nodes have no user session) and checks the node bearer itself,
in constant time, before reading the body. The reply tells the node how often to report.
"""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError

from controller.medianodes.service import MEDIA_NODES, MediaNodes, media_nodes_ctx
from controller.security.access import Routes, public
from controller.web.errors import error
from protocol.media import NODE_REPORT_PATH, NodeReport, NodeReportReply, bearer_matches

logger = logging.getLogger(__name__)

MAX_REPORT_BYTES = 1024 * 1024


async def node_report(request: web.Request) -> web.StreamResponse:
    """A media node reports its addresses, capacity, load and live sessions (node bearer)."""
    nodes = request.app[MEDIA_NODES]
    if not bearer_matches(request.headers.get("Authorization"), nodes.secret):
        logger.info("media node report refused from %s: wrong or missing bearer", request.remote)
        return error(401, "this media node's credential is missing or wrong")
    if request.content_length is not None and request.content_length > MAX_REPORT_BYTES:
        return error(413, "the report is too large")
    raw = await request.read()
    try:
        report = NodeReport.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return error(422, f"{where}: {first['msg']}")
    nodes.registry.report(report)
    return web.json_response(NodeReportReply(interval_s=nodes.registry.interval_s).model_dump())


def setup(app: web.Application, routes: Routes, nodes: MediaNodes) -> None:
    app[MEDIA_NODES] = nodes
    app.cleanup_ctx.append(media_nodes_ctx)
    routes.add("POST", NODE_REPORT_PATH, node_report, public(), body=NodeReport)
