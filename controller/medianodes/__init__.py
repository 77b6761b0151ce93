"""Media nodes seen from the controller: their reports, placement of rooms and relays, media tokens, ICE
servers (TURN REST credentials) and the control client. See controller/README.md, "Media nodes"."""

from controller.medianodes.registry import NodeRegistry, NodeState, NoMediaNode
from controller.medianodes.service import MEDIA_NODES, MediaNodes

__all__ = ["MEDIA_NODES", "MediaNodes", "NoMediaNode", "NodeRegistry", "NodeState"]
