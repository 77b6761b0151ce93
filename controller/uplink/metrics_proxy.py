"""Prometheus scrapes agents through the controller (agents are behind NAT; the controller never connects in).

GET /api/prometheus/agents is Prometheus HTTP service discovery: a JSON list of {"targets", "labels"}, one entry
per agent with a live uplink. The target is the address Prometheus reached the controller at (its Host header);
the labels are `agent` (the agent's id), `site` (its unit's name) and `site_id`, never a token or an address.
The job's relabelling turns `agent` into the metrics path and the instance (dashboards/prometheus).

GET /api/agents/{agent_id}/metrics sends a `metrics_request` over the agent's live link and answers with the
exposition the agent sends back (the same text its LAN /metrics serves): 503 when the agent has no live link or
does not answer within `agent_metrics_timeout_s`; 404 for an unknown agent (the access policy says so). An
exposition the agent had to cut to fit a frame is served as it is, flagged by the `X-Ketnoi-Truncated` header.

Both routes are for administrators: a session, or (for Prometheus) an administrator's API token from
POST /api/tokens, sent as `Authorization: Bearer` (Prometheus: `authorization.credentials_file`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from aiohttp import web
from sqlalchemy import select

from controller import state
from controller.db.models import Agent, Unit
from controller.metrics import CONTENT_TYPE
from controller.security.access import ADMINS, Kind, Policy, Routes, Scope
from controller.uplink.hub import Connection, Hub
from protocol.uplink import MetricsRequest, MetricsResponse

logger = logging.getLogger(__name__)

SD_PATH = "/api/prometheus/agents"
MAX_PENDING = 1024
"""Metrics requests waiting for agents at once; more are refused (503) rather than queued."""


class AgentUnavailable(Exception):
    """The agent cannot answer now: no live link, too many requests waiting, or no answer in time."""


class MetricsProxy:
    """Metrics requests sent to agents and waiting for their answer, by (agent id, request id)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._waiting: dict[tuple[int, str], tuple[Connection, asyncio.Future[MetricsResponse]]] = {}
        self._welcomed: set[Connection] = set()

    def welcomed(self, connection: Connection) -> None:
        """The link got its Welcome: requests may go over it (one sent before would break the agent's handshake)."""
        self._welcomed.add(connection)

    def reachable(self, agent_id: int) -> Connection | None:
        """The agent's current link, if it has been welcomed."""
        connection = self._hub.get(agent_id)
        return connection if connection in self._welcomed else None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def fetch(self, agent_id: int, timeout_s: float) -> MetricsResponse:
        connection = self.reachable(agent_id)
        if connection is None:
            raise AgentUnavailable("the agent is offline: it has no live link to the controller")
        if len(self._waiting) >= MAX_PENDING:
            raise AgentUnavailable("too many metrics requests are waiting for agents")
        key = (agent_id, secrets.token_hex(8))
        future: asyncio.Future[MetricsResponse] = asyncio.get_running_loop().create_future()
        self._waiting[key] = (connection, future)
        try:
            await _send(connection, MetricsRequest(request_id=key[1]))
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            raise AgentUnavailable(f"the agent did not answer within {timeout_s:g} s") from None
        finally:
            self._waiting.pop(key, None)

    def on_response(self, agent_id: int, message: MetricsResponse) -> None:
        """An agent's answer; one to a request this agent was not sent (or that timed out) is dropped."""
        waiting = self._waiting.get((agent_id, message.request_id))
        if waiting is None or waiting[1].done():
            logger.debug("agent %s: dropping a metrics response nobody waits for", agent_id)
            return
        waiting[1].set_result(message)

    def link_closed(self, connection: Connection) -> None:
        """The requests sent over `connection` will get no answer: they fail now rather than at their timeout."""
        self._welcomed.discard(connection)
        for sent_over, future in list(self._waiting.values()):
            if sent_over is connection and not future.done():
                future.set_exception(AgentUnavailable("the agent's link closed before it answered"))


async def _send(connection: Connection, message: MetricsRequest) -> None:
    try:
        await connection.send(message)
    except (ConnectionError, RuntimeError) as exc:
        raise AgentUnavailable("the agent's link is closing") from exc


METRICS_PROXY: web.AppKey[MetricsProxy] = web.AppKey("metrics_proxy", MetricsProxy)


async def service_discovery(request: web.Request) -> web.StreamResponse:
    """Prometheus HTTP service discovery: the agents with a live uplink."""
    proxy = request.app[METRICS_PROXY]
    async with request.app[state.DB]() as session:
        rows = (
            await session.execute(
                select(Agent.id, Unit.id, Unit.name)
                .join(Unit, Unit.id == Agent.unit_id)
                .where(Agent.online.is_(True), Agent.revoked_at.is_(None))
                .order_by(Agent.id)
            )
        ).all()
    target = request.host
    groups = [
        {"targets": [target], "labels": {"agent": str(agent_id), "site": site_name, "site_id": str(site_id)}}
        for agent_id, site_id, site_name in rows
        if proxy.reachable(agent_id) is not None
    ]
    return web.json_response(groups)


async def agent_metrics(request: web.Request) -> web.StreamResponse:
    """The agent's Prometheus metrics, fetched over its uplink."""
    agent_id = int(request.match_info["agent_id"])
    timeout_s = request.app[state.CONFIG].agent_metrics_timeout_s
    try:
        answer = await request.app[METRICS_PROXY].fetch(agent_id, timeout_s)
    except AgentUnavailable as exc:
        logger.info("agent %s: metrics not available: %s", agent_id, exc)
        return web.json_response({"error": str(exc)}, status=503)
    headers = {"Content-Type": CONTENT_TYPE}
    if answer.truncated:
        logger.warning("agent %s: its metrics exposition was cut to fit the uplink frame", agent_id)
        headers["X-Ketnoi-Truncated"] = "1"
    return web.Response(body=answer.body.encode("utf-8"), headers=headers)


def setup(app: web.Application, routes: Routes) -> None:
    app[METRICS_PROXY] = MetricsProxy(app[state.HUB])
    routes.add("GET", SD_PATH, service_discovery, Policy(ADMINS, Kind.API))
    routes.add(
        "GET", "/api/agents/{agent_id:\\d+}/metrics", agent_metrics, Policy(ADMINS, Kind.API, Scope.AGENT),
        errors=(503,),
    )  # fmt: skip
