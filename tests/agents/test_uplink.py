"""The agent's side of the uplink, against a small fake controller that speaks protocol/uplink.py.

The real controller is exercised end to end in tests/test_end_to_end_uplink.py; here the fake lets each test
stop, restart and misbehave the server at exactly the moment it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web

from agents.enrolment import EnrolmentError, TokenStore, enrol
from agents.uplink import SEQ_BLOCK, SeqAllocator, Uplink
from common.backoff import Backoff
from protocol.camera import CameraReport, CameraState
from protocol.uplink import (
    AGENT_MESSAGE,
    ENROL_PATH,
    UPLINK_PATH,
    Ack,
    ApproveCamera,
    CameraUpdate,
    EnrolRequest,
    EnrolResponse,
    Hello,
    Welcome,
)
from tests.ports import free_port
from tests.waiting import eventually

TOKEN = "tok-" + "x" * 40


def report(ref: str, state: CameraState = CameraState.READY, reason: str = "ok") -> CameraReport:
    now = datetime.now(UTC)
    return CameraReport(
        endpoint_ref=ref,
        address="198.18.1.10",
        state=state,
        reason=reason,
        first_seen=now,
        last_seen=now,
        changed_at=now,
    )


@dataclass
class FakeController:
    """Keeps what a controller would: the last seq stored, the updates applied, the hellos seen."""

    port: int
    last_seq: int = 0
    hellos: list[Hello] = field(default_factory=list)
    applied: list[CameraUpdate] = field(default_factory=list)
    approved: list[str] = field(default_factory=list)
    ack: bool = True
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(ENROL_PATH, self.enrol)
        app.router.add_get(UPLINK_PATH, self.uplink)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        for ws in self.sockets:
            await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def enrol(self, request: web.Request) -> web.Response:
        body = EnrolRequest.model_validate_json(await request.read())
        if body.code != "ABCD-2345":
            return web.json_response({"error": "this enrolment code is unknown or already used"}, status=403)
        answer = EnrolResponse(agent_id="a1", site_id="s1", site_name="MN Hoa Sen", token=TOKEN)
        return web.json_response(answer.model_dump())

    async def uplink(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized(text="unknown agent token")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            message = AGENT_MESSAGE.validate_json(msg.data)
            async with self.changed:
                if isinstance(message, Hello):
                    self.hellos.append(message)
                    welcome = Welcome(
                        agent_id="a1",
                        server_time=datetime.now(UTC),
                        acked_seq=self.last_seq,
                        status_interval_s=30,
                        approved=self.approved,
                    )
                    await ws.send_str(welcome.model_dump_json())
                elif isinstance(message, CameraUpdate):
                    if message.seq > self.last_seq:
                        self.applied.append(message)
                        self.last_seq = message.seq
                    if self.ack:
                        await ws.send_str(Ack(seq=message.seq).model_dump_json())
                self.changed.notify_all()
        return ws

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(predicate)


@pytest.fixture
async def controller() -> AsyncIterator[FakeController]:
    fake = FakeController(port=free_port())
    await fake.start()
    yield fake
    await fake.stop()


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(uplink.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_uplink(
    port: int,
    inventory: dict[str, CameraReport],
    *,
    state_dir: Path | None = None,
    on_approve: Callable[[str], Awaitable[None]] | None = None,
    token: str = TOKEN,
) -> Uplink:
    async def ignore(_: str) -> None:
        return None

    return Uplink(
        f"http://127.0.0.1:{port}",
        token,
        hostname="agent-test",
        version="0.1.0",
        snapshot=lambda: list(inventory.values()),
        on_approve=on_approve or ignore,
        state_dir=state_dir,
        backoff=Backoff(base=0.02, cap=0.1),
    )


async def test_enrol_saves_token_readable_by_owner_only(controller: FakeController, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{controller.port}"
    response = await enrol(url, "ABCD-2345", hostname="h", version="0.1.0")
    store = TokenStore(tmp_path)
    assert store.load() is None
    store.save(url, response)
    creds = store.load()
    assert creds is not None
    assert (creds.agent_id, creds.site_name, creds.token) == ("a1", "MN Hoa Sen", TOKEN)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


async def test_enrol_with_a_wrong_code_says_why(controller: FakeController) -> None:
    with pytest.raises(EnrolmentError, match="unknown or already used"):
        await enrol(f"http://127.0.0.1:{controller.port}", "WRONG-CODE", hostname="h", version="0.1.0")


async def test_enrol_with_no_controller_says_unreachable() -> None:
    with pytest.raises(EnrolmentError, match="cannot reach"):
        await enrol(f"http://127.0.0.1:{free_port()}", "ABCD-2345", hostname="h", version="0.1.0")


async def test_hello_carries_inventory_and_updates_are_acknowledged(controller: FakeController) -> None:
    inventory = {"urn:uuid:1": report("urn:uuid:1")}
    uplink = make_uplink(controller.port, inventory)
    async with running(uplink):
        await controller.wait_for(lambda: len(controller.hellos) == 1)
        assert [c.endpoint_ref for c in controller.hellos[0].cameras] == ["urn:uuid:1"]
        inventory["urn:uuid:2"] = report("urn:uuid:2", CameraState.AUTH_FAILED, "wrong password")
        uplink.publish(inventory["urn:uuid:2"])
        await controller.wait_for(lambda: len(controller.applied) == 1)
        assert controller.applied[0].camera.state == CameraState.AUTH_FAILED
        await eventually(lambda: uplink.pending == 0)


async def test_controller_down_then_back_resyncs_without_duplicates(tmp_path: Path) -> None:
    port = free_port()
    inventory = {"urn:uuid:1": report("urn:uuid:1")}
    uplink = make_uplink(port, inventory, state_dir=tmp_path)
    first = FakeController(port=port, ack=False)  # stores but never acks: a crash before the ack
    await first.start()
    async with running(uplink):
        await first.wait_for(lambda: len(first.hellos) == 1)
        uplink.publish(report("urn:uuid:1", CameraState.UNREACHABLE, "timed out"))
        await first.wait_for(lambda: len(first.applied) == 1)
        await first.stop()

        # While the controller is down the agent keeps publishing; the updates wait in its buffer.
        uplink.publish(report("urn:uuid:1", CameraState.READY, "ok"))
        uplink.publish(report("urn:uuid:2", CameraState.PENDING_APPROVAL, "outside the camera networks"))
        assert uplink.pending == 3

        second = FakeController(port=port, last_seq=first.last_seq)  # the same database, restarted
        await second.start()
        try:
            await second.wait_for(lambda: len(second.applied) == 2)
            # The one already stored was not applied again; the two new ones arrived in order.
            assert [u.camera.endpoint_ref for u in second.applied] == ["urn:uuid:1", "urn:uuid:2"]
            assert [u.seq for u in second.applied] == sorted(u.seq for u in second.applied)
            assert second.applied[0].seq > first.applied[0].seq
            assert second.hellos[0].seq == second.applied[-1].seq
            await eventually(lambda: uplink.pending == 0)
        finally:
            await second.stop()


async def test_refused_token_keeps_the_agent_alive_and_retrying(controller: FakeController) -> None:
    uplink = make_uplink(controller.port, {}, token="revoked-token-0000000000")
    async with running(uplink) as task:
        uplink.publish(report("urn:uuid:1"))
        # A refusal pushes the backoff to its cap at once (16 doublings) and keeps retrying.
        await eventually(lambda: uplink._backoff.failures >= 17)
        assert not task.done()
        assert not uplink.online.is_set()
        assert uplink.pending == 1  # nothing lost while refused
        assert controller.hellos == []


async def test_approvals_reach_the_agent(controller: FakeController) -> None:
    approved: list[str] = []
    seen = asyncio.Event()

    async def on_approve(ref: str) -> None:
        approved.append(ref)
        seen.set()

    controller.approved = ["urn:uuid:9"]
    uplink = make_uplink(controller.port, {}, on_approve=on_approve)
    async with running(uplink):
        async with asyncio.timeout(5):
            await seen.wait()
        seen.clear()
        await controller.sockets[-1].send_str(ApproveCamera(endpoint_ref="urn:uuid:7").model_dump_json())
        async with asyncio.timeout(5):
            await seen.wait()
    assert approved == ["urn:uuid:9", "urn:uuid:7"]


def test_sequence_numbers_grow_across_restarts(tmp_path: Path) -> None:
    first = SeqAllocator(tmp_path)
    issued = [first.allocate() for _ in range(5)]
    second = SeqAllocator(tmp_path)  # a restart (or kill -9) after five numbers
    assert second.allocate() > max(issued)
    assert SeqAllocator(None).allocate() == 1
    third = SeqAllocator(tmp_path)
    numbers = [third.allocate() for _ in range(SEQ_BLOCK + 5)]
    assert numbers == sorted(set(numbers))
