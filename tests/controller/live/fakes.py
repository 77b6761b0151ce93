"""A fake media node for the controller's side: a real aiohttp server on a free loopback port that records the
CloseRequests it gets (checking the node bearer), and a helper that posts NodeReports as a node would."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from protocol.media import (
    CONTROL_CLOSE_PATH,
    NODE_REPORT_PATH,
    CloseRequest,
    CloseResult,
    NodeLoad,
    NodeReport,
    bearer_matches,
    node_bearer,
)
from tests.controller.conftest import Client
from tests.ports import free_port


@dataclass
class FakeNode:
    node_id: str
    secret: bytes
    closes: list[CloseRequest] = field(default_factory=list)
    refused: int = 0
    view_sessions: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _close(self, request: web.Request) -> web.StreamResponse:
        if not bearer_matches(request.headers.get("Authorization"), self.secret):
            self.refused += 1
            return web.json_response({"error": "bearer"}, status=401)
        close = CloseRequest.model_validate_json(await request.read())
        self.closes.append(close)
        closed = [s for s in self.view_sessions if s in close.view_sessions]
        self.view_sessions = [s for s in self.view_sessions if s not in close.view_sessions]
        return web.json_response(CloseResult(closed=len(closed)).model_dump())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(CONTROL_CLOSE_PATH, self._close)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def closed_sessions(self) -> set[str]:
        return {s for close in self.closes for s in close.view_sessions}

    def report(self, streams_out: int = 0, capacity: int = 100) -> NodeReport:
        return NodeReport(
            node_id=self.node_id,
            public_url=self.url,
            control_url=self.url,
            version="test",
            capacity_streams=capacity,
            load=NodeLoad(rooms=0, relays=0, publishers=0, subscribers=0, streams_out=streams_out, cpu=0.0),
            view_sessions=list(self.view_sessions),
        )

    async def send_report(self, client: Client, streams_out: int = 0, capacity: int = 100) -> None:
        response = await client.post(
            NODE_REPORT_PATH,
            data=self.report(streams_out, capacity).model_dump_json(),
            headers={"Authorization": f"Bearer {node_bearer(self.secret)}"},
        )
        assert response.status == 200, await response.text()
