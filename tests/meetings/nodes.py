"""A media node with the meeting extension on 127.0.0.1 (in this process), and meeting tokens for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from common.clock import Clock, SystemClock
from media.node.config import NodeConfig
from media.node.context import NodeContext
from media.node.extension import ExtensionLoad
from media.node.metrics import NodeMetrics
from media.node.ratelimit import AddressLimiter
from media.rooms.extension import Meetings, MeetingSettings
from protocol.media import MEETING_WS_PATH, MediaTokens, MeetingRole, ReplayGuard, TokenKind
from rtc import aiortc_adapter as adapter
from rtc.aiortc_adapter import LoopbackCandidates
from tests.ports import free_port

SECRET = b"meeting tests secret, 32 bytes.."
NODE_ID = "media-test"


@dataclass
class Node:
    port: int
    meetings: Meetings
    tokens: MediaTokens
    node: NodeContext

    def ws_url(self, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}{MEETING_WS_PATH.format(room=room)}"

    def token(
        self,
        room: str,
        role: MeetingRole = MeetingRole.PARTICIPANT,
        *,
        name: str = "",
        subject: str | None = None,
        class_mode: bool = False,
        ttl: timedelta = timedelta(minutes=1),
        node: str = NODE_ID,
        kind: TokenKind = TokenKind.MEETING,
    ) -> str:
        return self.tokens.issue(
            kind=kind, node=node, room=room, subject=subject or f"test:{name or role.value}", ttl=ttl,
            name=name or role.value, role=role, class_mode=class_mode,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def meeting_node(settings: MeetingSettings | None = None, clock: Clock | None = None) -> AsyncIterator[Node]:
    """The node's meeting route and context as the node builds them, served on a free port."""
    clock = clock or SystemClock()
    port = free_port()
    config = NodeConfig(node_id=NODE_ID, host="127.0.0.1", port=port, loopback_candidates=True)
    meetings = Meetings(settings)
    tokens = MediaTokens(SECRET, clock)
    node = NodeContext(
        config=config, clock=clock, secret=SECRET, tokens=tokens, replay=ReplayGuard(clock),
        limiter=AddressLimiter(clock, 1000), metrics=NodeMetrics(lambda: ExtensionLoad()), load=lambda: ExtensionLoad(),
    )  # fmt: skip
    app = web.Application()
    meetings.setup(app, node)
    adapter.set_loopback_candidates(LoopbackCandidates.ONLY)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    try:
        yield Node(port, meetings, tokens, node)
    finally:
        await meetings.shutdown()
        await runner.cleanup()
        adapter.set_loopback_candidates(LoopbackCandidates.DEFAULT)
