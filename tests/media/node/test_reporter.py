"""The load reporter: what it sends the controller, and that an absent controller only delays reports."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from common.backoff import Backoff
from common.clock import ManualClock
from media.node.config import NodeConfig
from media.node.extension import ExtensionLoad
from media.node.metrics import NodeMetrics
from media.node.reporter import Reporter
from protocol.media import NODE_REPORT_PATH, NodeReport, TokenKind, bearer_matches
from tests.media.node.helpers import DecodingViewer, LoopPublisher, h264_loop, running_node
from tests.ports import free_port
from tests.waiting import eventually

SECRET = b"a media secret of enough length!"


class FakeController:
    """Takes reports at NODE_REPORT_PATH as the controller does (node bearer), and keeps them."""

    def __init__(self, interval_s: float = 7.0, secret: bytes = SECRET) -> None:
        self.secret = secret
        self.reports: list[NodeReport] = []
        self.refused = 0
        self.interval_s = interval_s

    async def handle(self, request: web.Request) -> web.Response:
        if not bearer_matches(request.headers.get("Authorization"), self.secret):
            self.refused += 1
            return web.json_response({"error": "who are you"}, status=401)
        self.reports.append(NodeReport.model_validate_json(await request.read()))
        return web.json_response({"interval_s": self.interval_s})


@contextlib.asynccontextmanager
async def serving(controller: FakeController, port: int) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_post(NODE_REPORT_PATH, controller.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        yield
    finally:
        await runner.cleanup()


def config(port: int) -> NodeConfig:
    return NodeConfig(
        node_id="media-9",
        public_url="https://media-9.example.vn",
        controller_url=f"http://127.0.0.1:{port}",
        report_interval_s=5,
        capacity_streams=300,
    )


async def test_reports_carry_the_node_s_load_and_sessions_and_follow_the_controller_s_interval() -> None:
    port = free_port()
    controller = FakeController(interval_s=7.0)
    load = ExtensionLoad(relays=2, publishers=2, subscribers=3, streams_out=3, view_sessions=["s2", "s1", "s1"])
    clock = ManualClock()
    reporter = Reporter(config(port), SECRET, lambda: load, NodeMetrics(lambda: load), clock)
    async with serving(controller, port):
        task = asyncio.create_task(reporter.run())
        try:
            await eventually(lambda: len(controller.reports) == 1)
            report = controller.reports[0]
            assert (report.node_id, report.public_url, report.control_url) == (
                "media-9", "https://media-9.example.vn", "https://media-9.example.vn"
            )  # fmt: skip
            assert (report.capacity_streams, report.load.relays, report.load.subscribers) == (300, 2, 3)
            assert report.view_sessions == ["s1", "s2"]
            assert reporter.interval_s == 7.0
            await clock.advance(6.9)
            await clock.advance(0.2)
            await eventually(lambda: len(controller.reports) == 2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_an_absent_controller_delays_reports_with_backoff_and_they_resume() -> None:
    port = free_port()
    controller = FakeController()
    clock = ManualClock()
    load = ExtensionLoad()
    backoff = Backoff(base=5, cap=15, rng=random.Random(1))
    reporter = Reporter(config(port), SECRET, lambda: load, NodeMetrics(lambda: load), clock, backoff=backoff)
    task = asyncio.create_task(reporter.run())
    try:
        await eventually(lambda: reporter.failures == 1)
        await clock.advance(5)
        await eventually(lambda: reporter.failures == 2)
        async with serving(controller, port):
            await clock.advance(15)  # the longest a backed-off report waits: three intervals
            await eventually(lambda: len(controller.reports) == 1)
            assert reporter.failures == 0 and backoff.failures == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_wrong_secret_is_refused_by_the_controller_and_counted(tmp_path: Path) -> None:
    port = free_port()
    controller = FakeController()
    load = ExtensionLoad()
    metrics = NodeMetrics(lambda: load)
    reporter = Reporter(config(port), b"some other secret, long enough", lambda: load, metrics, ManualClock())
    async with serving(controller, port):
        task = asyncio.create_task(reporter.run())
        try:
            await eventually(lambda: controller.refused == 1)
            await eventually(lambda: metrics.registry.get_sample_value(
                "ketnoi_media_reports_total", {"outcome": "failed"}) == 1.0)  # fmt: skip
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_running_node_reports_its_viewers_sessions(tmp_path: Path) -> None:
    port = free_port()
    controller = FakeController(interval_s=0.2)
    url = f"http://127.0.0.1:{port}"
    async with serving(controller, port), running_node(tmp_path, controller_url=url, report_interval_s=0.2) as node:
        controller.secret = node.secret
        publisher = LoopPublisher(await h264_loop())
        viewer = DecodingViewer()
        try:
            assert await publisher.publish(node, "cam-8", node.token(TokenKind.PUBLISH, "cam-8")) == 201
            assert (await viewer.view(node, "cam-8", node.view_token("cam-8", session="live-42")))[0] == 201
            await eventually(lambda: any(r.view_sessions == ["live-42"] for r in controller.reports), timeout=10)
            last = controller.reports[-1]
            assert last.load.relays == 1 and last.load.publishers == 1
        finally:
            await viewer.close()
            await publisher.close()
