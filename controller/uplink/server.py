"""GET UPLINK_PATH: the agent's WebSocket.

The token is checked before the upgrade (401 otherwise). Frames are at most MAX_FRAME_BYTES (aiohttp closes
with 1009 above that) and at most `uplink_messages_per_second` (burst `uplink_message_burst`) per connection.
The first message must be a Hello of PROTOCOL_VERSION; then CameraUpdates are stored and acknowledged in
order (a seq already stored is acknowledged, not applied again) and Status refreshes last_seen. A malformed
message gets an Error; after MAX_MALFORMED of them the link is closed. A second connection of the same agent
replaces the first; when the current connection ends, the agent is offline.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import ValidationError
from sqlalchemy import select

from common.ratelimit import TokenBucket
from controller import state
from controller.db.models import Agent
from controller.live.watcher import LIVE
from controller.security.tokens import sha256_hex
from controller.uplink import inventory
from controller.uplink.hub import Connection
from controller.uplink.metrics_proxy import METRICS_PROXY
from protocol.uplink import (
    AGENT_MESSAGE,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ack,
    AgentMessage,
    CameraUpdate,
    Error,
    Hello,
    MetricsResponse,
    PublishState,
    Status,
    Welcome,
)

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 15.0
MAX_MALFORMED = 3
HEARTBEAT_S = 30.0


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass
class _Malformed:
    count: int = 0


class _Refused(Exception):
    """The link must end; the message goes to the agent as a fatal Error."""


async def uplink(request: web.Request) -> web.StreamResponse:
    app = request.app
    metrics = app[state.METRICS]
    token = bearer_token(request)
    agent_id: int | None = None
    if token is not None:
        async with app[state.DB]() as session:
            agent_id = (
                await session.execute(
                    select(Agent.id).where(Agent.token_hash == sha256_hex(token), Agent.revoked_at.is_(None))
                )
            ).scalar_one_or_none()
    if agent_id is None:
        metrics.connections.labels("refused").inc()
        return web.json_response({"error": "unknown or revoked agent token"}, status=401)
    ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    metrics.connections.labels("accepted").inc()
    connection = Connection(agent_id, ws)
    previous = app[state.HUB].attach(connection)
    if previous is not None:
        logger.info("agent %s: a new connection replaces the previous one", agent_id)
        await previous.close("replaced by a newer connection of this agent")
    try:
        await _serve(request, connection)
    except _Refused as exc:
        logger.info("agent %s: closing the link: %s", agent_id, exc)
        await connection.close(str(exc))
    finally:
        app[METRICS_PROXY].link_closed(connection)
        if app[state.HUB].detach(connection):
            # aiohttp cancels the handler when the peer goes away: the offline mark must still be written.
            await asyncio.shield(app[state.HUB].track(_mark_offline(app, agent_id)))
        if not ws.closed:
            await ws.close()
    return ws


async def _mark_offline(app: web.Application, agent_id: int) -> None:
    async with app[state.DB].begin() as session:
        await inventory.mark_offline(session, agent_id)
    logger.info("agent %s: offline", agent_id)


async def _next_message(connection: Connection, malformed: _Malformed) -> AgentMessage | None:
    """The next valid message; None when the link closed. Malformed frames are answered and counted."""
    ws = connection.ws
    while True:
        frame = await ws.receive()
        if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            if frame.type is WSMsgType.ERROR:
                logger.info("agent %s: link error: %s", connection.agent_id, ws.exception())
            return None
        try:
            if frame.type is not WSMsgType.TEXT:
                raise ValueError("frames must be JSON text")
            return AGENT_MESSAGE.validate_json(frame.data)
        except (ValidationError, ValueError) as exc:
            malformed.count += 1
            problem = _describe(exc)
            logger.info("agent %s: malformed message (%s)", connection.agent_id, problem)
            if malformed.count >= MAX_MALFORMED:
                raise _Refused(f"too many malformed messages; last: {problem}") from None
            await connection.send(Error(message=f"malformed message: {problem}"))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"[:300]
    return str(exc)[:300]


async def _serve(request: web.Request, connection: Connection) -> None:
    app = request.app
    config, clock, metrics, db = app[state.CONFIG], app[state.CLOCK], app[state.METRICS], app[state.DB]
    agent_id = connection.agent_id
    malformed = _Malformed()
    try:
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            first = await _next_message(connection, malformed)
    except TimeoutError:
        raise _Refused("no hello within the time allowed") from None
    if first is None:
        return
    metrics.message(first.type)
    if not isinstance(first, Hello):
        raise _Refused("the first message must be a hello")
    if first.version != PROTOCOL_VERSION:
        raise _Refused(f"protocol version {first.version} is not supported; this controller speaks {PROTOCOL_VERSION}")
    async with db.begin() as session:
        agent = await session.get(Agent, agent_id)
        if agent is None or agent.revoked_at is not None:
            raise _Refused("this agent has been revoked")
        result = await inventory.apply_hello(session, agent, first, clock.now(), request.remote)
    logger.info("agent %s: hello with %s cameras, seq %s", agent_id, len(first.cameras), first.seq)
    await connection.send(
        Welcome(
            agent_id=str(agent_id),
            server_time=clock.now(),
            acked_seq=result.acked_seq,
            status_interval_s=config.status_interval_s,
            approved=result.approved,
        )
    )
    app[METRICS_PROXY].welcomed(connection)
    bucket = TokenBucket(clock, config.uplink_messages_per_second, config.uplink_message_burst)
    while True:
        message = await _next_message(connection, malformed)
        if message is None:
            return
        metrics.message(message.type)
        if not bucket.take():
            raise _Refused("too many messages: slow down")
        await _handle(app, connection, message)


async def _handle(app: web.Application, connection: Connection, message: AgentMessage) -> None:
    if isinstance(message, MetricsResponse):  # Prometheus, through the controller (controller/uplink/metrics_proxy)
        app[METRICS_PROXY].on_response(connection.agent_id, message)
        return
    now = app[state.CLOCK].now()
    async with app[state.DB].begin() as session:
        if isinstance(message, CameraUpdate):
            applied = await inventory.apply_update(session, connection.agent_id, message, now)
        elif isinstance(message, Status):
            await inventory.touch(session, connection.agent_id, now)
            applied = False
        elif isinstance(message, PublishState):  # live view: recorded for the parent's page (controller/live)
            app[LIVE].publications.on_state(connection.agent_id, message)
            return
        else:
            await connection.send(Error(message="hello was already received on this link"))
            return
    if isinstance(message, CameraUpdate):
        if not applied:
            logger.debug("agent %s: update %s already stored", connection.agent_id, message.seq)
        await connection.send(Ack(seq=message.seq))


async def close_for(app: web.Application, agent_id: int, reason: str) -> None:
    """Close the agent's live connection, if it has one (revocation, silence)."""
    connection = app[state.HUB].get(agent_id)
    if connection is not None:
        await connection.close(reason, WSCloseCode.POLICY_VIOLATION)
