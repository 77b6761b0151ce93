"""The agent's WHIP publisher with real parts: a simulated camera over RTSP, the real media node, aiortc viewers.

Each test runs the agent's `Publisher` (what the uplink drives) against a node on a free loopback port and checks
what the controller would hear (`PublishState`) and what viewers get.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.live.config import LiveConfig
from agents.live.metrics import LiveCollector
from agents.publisher import STABLE_S, Publisher, choose_profile
from common.clock import Clock, ManualClock
from protocol.camera import CameraReport, CameraState
from protocol.media import TokenKind
from protocol.uplink import PublishCamera, PublishState
from simulator.camera import SimulatedCamera
from simulator.spec import CameraSpec, Quirks
from tests.agents.cameras import PASSWORD, running, spec
from tests.media.node.helpers import DecodingViewer, RunningNode, running_node
from tests.ports import free_port
from tests.recording.helpers import login_for, ready_report
from tests.waiting import eventually, eventually_true

ROOM = "cam-31"


@dataclass
class Agent:
    """The publisher as the agent runs it, with the states it sends up the uplink."""

    publisher: Publisher
    camera: SimulatedCamera
    states: list[PublishState] = field(default_factory=list)
    reports: list[CameraReport] = field(default_factory=list)

    def command(self, node: RunningNode, token: str | None = None, **kw: Any) -> PublishCamera:
        return PublishCamera(
            request_id=kw.pop("request_id", "req-1"),
            endpoint_ref=kw.pop("endpoint_ref", self.camera.spec.endpoint_ref),
            whip_url=f"{node.url}/whip/{ROOM}",
            token=token or node.token(TokenKind.PUBLISH, ROOM),
            **kw,
        )

    def last(self, state: str) -> PublishState | None:
        return next((s for s in reversed(self.states) if s.state == state), None)


@contextlib.asynccontextmanager
async def agent(host: str, clock: Clock | None = None, **live: Any) -> AsyncIterator[Agent]:
    quirks = live.pop("quirks", {})
    settings: dict[str, Any] = {"loopback_candidates": True, "stall_timeout_s": 2.0, "open_timeout_s": 5.0}
    settings.update(live)
    one = CameraSpec(
        name=f"live-{host}",
        host=host,
        http_port=free_port(host),
        rtsp_port=free_port(host),
        password=PASSWORD,
        quirks=Quirks(**quirks),
    )
    async with running([one]) as cameras:
        camera = cameras[0]
        holder: list[Agent] = []
        reports = [ready_report(camera)]
        publisher = Publisher(
            LiveConfig.model_validate(settings),
            lambda: reports,
            login_for,
            lambda state: holder[0].states.append(state),
            clock=clock,
        )
        result = Agent(publisher, camera, reports=reports)
        holder.append(result)
        task = asyncio.create_task(publisher.run())
        await publisher.started.wait()
        try:
            yield result
        finally:
            publisher.shutdown()
            await asyncio.wait_for(task, 15)


async def test_a_camera_is_published_and_watched_then_stopped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_node(tmp_path) as node, agent("127.0.9.1") as site:
        viewer = DecodingViewer()
        try:
            await site.publisher.publish(site.command(node))
            await eventually(lambda: site.last("publishing") is not None, timeout=15)
            assert (await viewer.view(node, ROOM, node.view_token(ROOM)))[0] == 201
            await eventually(lambda: viewer.decoded >= 25, timeout=15)
            publication = site.publisher.active()[site.camera.spec.endpoint_ref]
            assert publication.packets_sent > 25
            await site.publisher.stop(site.camera.spec.endpoint_ref)
            await eventually(lambda: site.last("stopped") is not None, timeout=10)
            stopped = site.last("stopped")
            assert stopped is not None and stopped.bytes_sent > publication.payload_bytes > 0
            assert stopped.request_id == "req-1"
            await eventually(lambda: node.live.load().publishers == 0, timeout=5)  # the agent DELETEd its session
            registry = CollectorRegistry()
            registry.register(LiveCollector(site.publisher))
            assert registry.get_sample_value("ketnoi_agent_live_publications") == 0
            assert registry.get_sample_value("ketnoi_agent_live_states_total", {"state": "publishing"}) == 1
            assert registry.get_sample_value("ketnoi_agent_live_states_total", {"state": "stopped"}) == 1
            assert registry.get_sample_value("ketnoi_agent_live_payload_bytes_total") == publication.payload_bytes
        finally:
            await viewer.close()
    logged = caplog.text
    assert PASSWORD not in logged and "p%40ss" not in logged


async def test_the_node_s_idle_close_ends_the_publication(tmp_path: Path) -> None:
    async with running_node(tmp_path, relay_idle_close_s=0.5) as node, agent("127.0.9.2") as site:
        await site.publisher.publish(site.command(node))
        await eventually(lambda: site.last("publishing") is not None, timeout=15)
        # Nobody watches: the relay closes after 0.5 s, and the agent hears it from the closed connection.
        await eventually(lambda: site.last("stopped") is not None, timeout=10)
        stopped = site.last("stopped")
        assert stopped is not None and "closed" in stopped.reason
        assert site.publisher.active() == {}
        assert node.live.closed_relays[-1] == (ROOM, "idle")


async def test_a_second_command_for_the_same_camera_replaces_the_publication(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node, agent("127.0.9.3") as site:
        await site.publisher.publish(site.command(node, request_id="first"))
        await eventually(lambda: site.last("publishing") is not None, timeout=15)
        await site.publisher.publish(site.command(node, request_id="second"))
        await eventually(lambda: any(s.request_id == "second" and s.state == "publishing" for s in site.states), 15)
        assert [(s.request_id, s.state) for s in site.states] == [
            ("first", "publishing"),
            ("first", "stopped"),
            ("second", "publishing"),
        ]
        assert node.live.load().publishers == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"endpoint_ref": "urn:uuid:00000000-0000-0000-0000-000000000000"}, "does not know this camera"),
        ({"profile_token": "nope"}, "no RTSP profile 'nope'"),
        ({"token": "expired"}, "expired"),
        ({"token": "replayed"}, "replayed"),
        ({"token": "other-room"}, "wrong_room"),
    ],
)
async def test_failures_are_reported_with_their_reason(tmp_path: Path, change: dict[str, str], reason: str) -> None:
    async with running_node(tmp_path) as node, agent("127.0.9.4") as site:
        tokens = {
            "expired": node.token(TokenKind.PUBLISH, ROOM, ttl_s=-5),
            "other-room": node.token(TokenKind.PUBLISH, "cam-32"),
        }
        if change.get("token") == "replayed":
            used = node.token(TokenKind.PUBLISH, ROOM)
            await site.publisher.publish(site.command(node, used, request_id="once"))
            await eventually(lambda: site.last("publishing") is not None, timeout=15)
            tokens["replayed"] = used
        if "token" in change:
            change = {"token": tokens[change["token"]]}
        await site.publisher.publish(site.command(node, request_id="bad", **change))
        await eventually(lambda: any(s.request_id == "bad" and s.state == "failed" for s in site.states), 15)
        failed = next(s for s in site.states if s.request_id == "bad")
        assert reason in failed.reason


async def test_a_camera_that_is_not_ready_is_not_published(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node, agent("127.0.9.5") as site:
        site.reports[0] = site.reports[0].model_copy(update={"state": CameraState.AUTH_FAILED, "reason": "401"})
        await site.publisher.publish(site.command(node))
        await eventually(lambda: site.last("failed") is not None, timeout=5)
        failed = site.last("failed")
        assert failed is not None and "auth_failed" in failed.reason
        assert node.live.load().relays == 0  # the token was not spent


async def test_the_stream_ending_is_retried_then_reported(tmp_path: Path) -> None:
    """The camera drops the connection 1 s after PLAY, every time: reopened `reconnects` times, then failed."""
    async with running_node(tmp_path) as node, agent("127.0.9.6", reconnects=1, quirks={"drop_after_s": 1.0}) as site:
        viewer = DecodingViewer()
        try:
            await site.publisher.publish(site.command(node))
            await eventually(lambda: site.last("publishing") is not None, timeout=15)
            assert (await viewer.view(node, ROOM, node.view_token(ROOM)))[0] == 201
            await eventually(lambda: site.last("failed") is not None, timeout=20)
            failed = site.last("failed")
            assert failed is not None and failed.reason.startswith("camera stream")
            assert PASSWORD not in failed.reason
            assert site.camera.rtsp.sessions_opened == 2  # the first connection and one reopening
        finally:
            await viewer.close()


def test_the_sub_stream_is_chosen_unless_a_profile_is_named() -> None:
    camera = SimulatedCamera(spec("choose", "127.0.9.9"))
    report = ready_report(camera)
    assert choose_profile(report, None).token == "sub"
    assert choose_profile(report, "main").token == "main"
    main_only = report.model_copy(update={"profiles": [p for p in report.profiles if p.role == "main"]})
    assert choose_profile(main_only, None).token == "main"


async def test_a_stream_that_ran_a_while_gets_its_reconnects_afresh(tmp_path: Path) -> None:
    """reconnects = 1 and a camera that drops every second: the first drop is reopened once, and a second drop
    ends the publication, unless the reopened stream had run STABLE_S (the injected clock says how long)."""
    clock = ManualClock()

    async def advancing(until: Callable[[], bool]) -> None:
        async def check() -> bool:
            await clock.advance(1)  # wakes the publisher's backoff sleep; each step is one second of its time
            return until()

        await eventually_true(check, timeout=20, interval=0.2)

    async with (
        running_node(tmp_path) as node,
        agent("127.0.9.7", clock=clock, reconnects=1, quirks={"drop_after_s": 1.0}) as site,
    ):
        rtsp = site.camera.rtsp
        await site.publisher.publish(site.command(node))
        await eventually(lambda: site.last("publishing") is not None, timeout=15)
        await advancing(lambda: rtsp.sessions_opened == 2)
        await clock.advance(STABLE_S + 1)  # the reopened stream has now run "long enough"
        await advancing(lambda: rtsp.sessions_opened == 3)
        await advancing(lambda: site.last("failed") is not None)
        assert rtsp.sessions_opened == 3
