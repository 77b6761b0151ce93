"""The media nodes the controller knows from their reports, and where rooms and camera relays go.

Nodes are stateless workers: each POSTs a `NodeReport` every `REPORT_INTERVAL_S` (the reply tells it the
interval). A node is fresh while its last report is at most `MISSED_REPORTS` intervals old; a stale node gets
nothing new, and the rooms placed on it are placed again elsewhere when next asked for.

Placement: a room already placed on a fresh node stays there (every participant or viewer of one room must meet
on one node). A new room goes to the fresh node with the lowest share of its capacity in use that can take the
streams asked for. The load of a node is what it last reported plus what was placed on it since (reserved until
its next report), so a burst of placements between two reports does not pile onto one node.

The registry lives in memory: with several controller replicas, each keeps its own from the same reports
(nodes report to every replica through the load balancer's one address: not solved yet).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from common.clock import Clock
from protocol.media import NodeReport

logger = logging.getLogger(__name__)

REPORT_INTERVAL_S = 2.0
"""How often nodes are asked to report."""
MISSED_REPORTS = 3
"""A node whose last report is older than this many intervals is stale."""


class NoMediaNode(Exception):
    """No fresh media node can take the room now."""


@dataclass
class NodeState:
    """What the controller knows of one node: its last report and what was placed on it since."""

    report: NodeReport
    received_mono: float
    received_at: datetime
    reserved: int = 0
    """Streams placed on the node since its last report."""
    reports: int = 1
    rooms: set[str] = field(default_factory=set)
    """Rooms this controller placed on the node and has not released."""

    @property
    def node_id(self) -> str:
        return self.report.node_id

    @property
    def load(self) -> float:
        """The share of the node's capacity in use (reported streams out plus reserved)."""
        return (self.report.load.streams_out + self.reserved) / self.report.capacity_streams

    def has_room_for(self, streams: int) -> bool:
        return self.report.load.streams_out + self.reserved + streams <= self.report.capacity_streams


class NodeRegistry:
    def __init__(self, clock: Clock, interval_s: float = REPORT_INTERVAL_S, missed: int = MISSED_REPORTS) -> None:
        self._clock = clock
        self.interval_s = interval_s
        self._stale_after = interval_s * missed
        self._nodes: dict[str, NodeState] = {}
        self._placements: dict[str, str] = {}

    def report(self, report: NodeReport) -> NodeState:
        """Take a node's report (its load replaces the reservations made since the previous one)."""
        previous = self._nodes.get(report.node_id)
        now_mono, now = self._clock.monotonic(), self._clock.now()
        if previous is None or not self._fresh(previous):
            logger.info("media node %s: reporting (%s)", report.node_id, report.public_url)
        if previous is None:
            state = NodeState(report=report, received_mono=now_mono, received_at=now)
        else:
            state = previous
            state.report, state.received_mono, state.received_at = report, now_mono, now
            state.reserved, state.reports = 0, previous.reports + 1
        self._nodes[report.node_id] = state
        return state

    def _fresh(self, state: NodeState) -> bool:
        return self._clock.monotonic() - state.received_mono <= self._stale_after

    def fresh(self) -> list[NodeState]:
        """The nodes that reported in time, by id."""
        return sorted((s for s in self._nodes.values() if self._fresh(s)), key=lambda s: s.node_id)

    def nodes(self) -> list[NodeState]:
        """Every node ever heard from in this process (fresh or not), by id."""
        return sorted(self._nodes.values(), key=lambda s: s.node_id)

    def is_fresh(self, node_id: str) -> bool:
        state = self._nodes.get(node_id)
        return state is not None and self._fresh(state)

    def get(self, node_id: str) -> NodeState | None:
        """The node if it is fresh."""
        state = self._nodes.get(node_id)
        return state if state is not None and self._fresh(state) else None

    def known(self, node_id: str) -> NodeState | None:
        """The node, fresh or not (to tell a late node to close what must close)."""
        return self._nodes.get(node_id)

    def placement(self, room: str) -> NodeState | None:
        """The fresh node `room` is placed on, if any."""
        node_id = self._placements.get(room)
        return None if node_id is None else self.get(node_id)

    def place(self, room: str, streams: int = 1) -> NodeState:
        """The node for `room`: where it already is (if that node is fresh), else the least loaded fresh node
        that can take `streams` more streams. `streams` is reserved on the node until its next report."""
        if streams < 0:
            raise ValueError("streams must not be negative")
        current = self.placement(room)
        if current is not None:
            current.reserved += streams
            return current
        stale = self._placements.pop(room, None)
        if stale is not None:
            logger.info("room %s: media node %s is stale; placing it again", room, stale)
            old = self._nodes.get(stale)
            if old is not None:
                old.rooms.discard(room)
        candidates = [s for s in self.fresh() if s.has_room_for(streams)]
        if not candidates:
            raise NoMediaNode("no media node with free capacity is reporting")
        chosen = min(candidates, key=lambda s: (s.load, s.node_id))
        chosen.reserved += streams
        chosen.rooms.add(room)
        self._placements[room] = chosen.node_id
        logger.info("room %s: placed on media node %s (load %.2f)", room, chosen.node_id, chosen.load)
        return chosen

    def release(self, room: str) -> None:
        """The room is closed: the next `place` chooses afresh."""
        node_id = self._placements.pop(room, None)
        if node_id is not None and node_id in self._nodes:
            self._nodes[node_id].rooms.discard(room)

    def placements(self) -> dict[str, str]:
        """room -> node id, for every room placed and not released."""
        return dict(self._placements)
