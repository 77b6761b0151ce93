"""The messages that cross between parts: typed, versioned, shared by both ends.

`protocol.camera` describes a camera as the agent reports it; `protocol.uplink` is the agent <-> controller
WebSocket protocol. Both ends validate every message with these models (`extra="forbid"`).
"""
