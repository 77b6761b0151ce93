"""A media node built as `python -m media serve` builds it (`media.node.app.build_app`), with the meeting
extension, served on 127.0.0.1 in this process; and meeting tokens for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from common.clock import Clock, SystemClock
from media.node.app import build_app
from media.node.config import NodeConfig
from media.node.context import NODE, NodeContext
from media.rooms.extension import Meetings, MeetingSettings
from protocol.media import MEETING_WS_PATH, MediaTokens, MeetingRole, TokenKind
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
        tokens: MediaTokens | None = None,
    ) -> str:
        return (tokens or self.tokens).issue(
            kind=kind, node=node, room=room, subject=subject or f"test:{name or role.value}", ttl=ttl,
            name=name or role.value, role=role, class_mode=class_mode,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def meeting_node(
    settings: MeetingSettings | None = None,
    clock: Clock | None = None,
    port: int | None = None,
    secret: bytes = SECRET,
    node_id: str = NODE_ID,
    per_minute: int = 10_000,
) -> AsyncIterator[Node]:
    clock = clock or SystemClock()
    port = port or free_port()
    config = NodeConfig(
        node_id=node_id, host="127.0.0.1", port=port, loopback_candidates=True, token_requests_per_minute=per_minute
    )
    meetings = Meetings(settings)
    app = build_app(config, secret, clock=clock, extensions=[meetings])
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    try:
        yield Node(port, meetings, MediaTokens(secret, clock), app[NODE])
    finally:
        await runner.cleanup()
        adapter.set_loopback_candidates(LoopbackCandidates.DEFAULT)
