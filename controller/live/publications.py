"""Camera publications: which camera the controller asked which agent to publish to which media node, and
what the agent said back (`PublishState`).

A node's report counts relays but does not name them, so the controller keeps this itself: a camera is
published when its agent answered `publishing` for the current node and has not said `stopped` or `failed`
since; a request still unanswered is not repeated for `REQUEST_PATIENCE_S`. Each request carries a single-use
publish token. A failure's reason is kept for the parent's page. Held in memory: after a controller restart the
next viewer asks again (the agent replaces its publication).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from common.clock import Clock
from controller.medianodes import MediaNodes, NodeState
from controller.uplink.hub import Hub
from protocol.media import WHIP_PATH, TokenKind, camera_room
from protocol.uplink import PublishCamera, PublishState, StopPublishing

logger = logging.getLogger(__name__)

REQUEST_PATIENCE_S = 15.0
"""How long an unanswered publish request stands before a new viewer asks again."""


class PublishError(Exception):
    """The agent cannot be asked (offline)."""


@dataclass
class Publication:
    room: str
    camera_id: int
    agent_id: int
    endpoint_ref: str
    node_id: str
    request_id: str
    state: str
    """requested, publishing, failed, stopped"""
    requested_mono: float
    reason: str = ""
    bytes_sent: int = 0


class Publications:
    def __init__(self, nodes: MediaNodes, hub: Hub, clock: Clock) -> None:
        self._nodes = nodes
        self._hub = hub
        self._clock = clock
        self._by_room: dict[str, Publication] = {}
        self._by_request: dict[str, Publication] = {}

    def get(self, camera_id: int) -> Publication | None:
        return self._by_room.get(camera_room(camera_id))

    def all(self) -> list[Publication]:
        return list(self._by_room.values())

    def _current(self, room: str, node_id: str) -> Publication | None:
        existing = self._by_room.get(room)
        if existing is None or existing.node_id != node_id:
            return None
        if existing.state == "publishing":
            return existing
        waited = self._clock.monotonic() - existing.requested_mono
        return existing if existing.state == "requested" and waited < REQUEST_PATIENCE_S else None

    async def ensure(self, camera_id: int, agent_id: int, endpoint_ref: str, node: NodeState) -> Publication:
        """Ask the camera's agent to publish to `node` unless it does already (or was just asked)."""
        room = camera_room(camera_id)
        current = self._current(room, node.node_id)
        if current is not None:
            return current
        connection = self._hub.get(agent_id)
        if connection is None:
            raise PublishError("the school's agent is offline")
        request_id = uuid.uuid4().hex
        token = self._nodes.tokens.issue(
            kind=TokenKind.PUBLISH, node=node.node_id, room=room, subject=f"agent:{agent_id}",
            ttl=self._nodes.token_ttl,
        )  # fmt: skip
        message = PublishCamera(
            request_id=request_id,
            endpoint_ref=endpoint_ref,
            whip_url=node.report.public_url.rstrip("/") + WHIP_PATH.format(room=room),
            token=token,
            ice_servers=self._nodes.ice_servers(f"agent:{agent_id}"),
        )
        publication = Publication(
            room, camera_id, agent_id, endpoint_ref, node.node_id, request_id, "requested", self._clock.monotonic()
        )
        previous = self._by_room.get(room)
        if previous is not None:
            self._by_request.pop(previous.request_id, None)
        self._by_room[room] = publication
        self._by_request[request_id] = publication
        try:
            await connection.send(message)
        except (ConnectionError, RuntimeError) as exc:
            publication.state, publication.reason = "failed", "the agent's link broke"
            raise PublishError("the school's agent could not be reached") from exc
        logger.info("camera %s: asked agent %s to publish to node %s", camera_id, agent_id, node.node_id)
        return publication

    def on_state(self, agent_id: int, message: PublishState) -> Publication | None:
        """Record an agent's PublishState; one for a request this agent was not sent is ignored."""
        publication = self._by_request.get(message.request_id)
        if publication is None or publication.agent_id != agent_id:
            logger.info("agent %s: publish state for an unknown request (%s)", agent_id, message.state)
            return None
        publication.state, publication.reason = message.state, message.reason
        publication.bytes_sent = message.bytes_sent
        log = logger.warning if message.state == "failed" else logger.info
        log("camera %s: agent %s says %s %s", publication.camera_id, agent_id, message.state, message.reason)
        return publication

    async def stop(self, camera_id: int) -> None:
        """Tell the agent to stop publishing the camera (no viewers left) and forget the publication."""
        publication = self._by_room.pop(camera_room(camera_id), None)
        if publication is None:
            return
        self._by_request.pop(publication.request_id, None)
        connection = self._hub.get(publication.agent_id)
        if connection is not None:
            try:
                await connection.send(StopPublishing(endpoint_ref=publication.endpoint_ref))
            except (ConnectionError, RuntimeError):
                logger.info("camera %s: the agent's link broke; its publication ends with the link", camera_id)
        logger.info("camera %s: publication stopped (no viewers)", camera_id)
