"""What every route of the node shares: configuration, clock, token checks, the rate limit, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from common.clock import Clock
from common.ratelimit import WindowLimiter
from media.node.config import NodeConfig
from media.node.extension import ExtensionLoad
from media.node.metrics import NodeMetrics
from protocol.media import MediaTokens, ReplayGuard


@dataclass
class NodeContext:
    config: NodeConfig
    clock: Clock
    secret: bytes
    tokens: MediaTokens
    replay: ReplayGuard
    """Single-use token ids (publish and view tokens) seen by this node, until they expire."""
    limiter: WindowLimiter
    metrics: NodeMetrics
    load: Callable[[], ExtensionLoad]
    """What the whole node carries now (every extension), for capacity checks."""


NODE = web.AppKey("media_node", NodeContext)
