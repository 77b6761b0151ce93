"""What the Chromium meeting tests share: a real controller on a known port with a booking open now and its join
links, a real media node reported to it, and the page's getStats read per participant."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from common.clock import ManualClock
from controller.app import build_app
from controller.medianodes import MEDIA_NODES
from controller.security.passwords import Passwords, cheap_hasher
from protocol.media import NodeLoad, NodeReport
from tests.browser import Page
from tests.controller.bookings.conftest import Caller
from tests.controller.conftest import PASSWORD, csrf_token, make_config, seed
from tests.meetings.nodes import Node
from tests.ports import free_port

STATS = "window.ketnoiMeeting.stats()"
ServerClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
"""pytest-aiohttp's `aiohttp_client`, called with `server_kwargs` (the port the browser's origin names)."""


@dataclass
class World:
    app: web.Application
    clock: ManualClock
    admin: Caller
    booking: int
    rooms: list[int]
    urls: list[str]
    """One join link per room, the host room's first."""

    @property
    def secret(self) -> bytes:
        return self.app[MEDIA_NODES].secret

    async def link(self, room: int, role: str) -> str:
        status, links = await self.admin.get(f"/api/bookings/{self.booking}/join-links", room=str(room), role=role)
        assert status == 200, links
        return str(links["links"][0]["url"])

    def report(self, node: Node, node_id: str) -> None:
        """The node tells the controller it is there (as its load reports do), so sessions are placed on it."""
        load = NodeLoad(rooms=0, relays=0, publishers=0, subscribers=0, streams_out=0, cpu=0.0)
        self.app[MEDIA_NODES].registry.report(
            NodeReport(node_id=node_id, public_url=node.url, control_url=node.url, version="t",
                       capacity_streams=100, load=load)
        )  # fmt: skip


async def open_session(aiohttp_client: ServerClient, tmp_path: Path, mode: str = "meeting") -> World:
    """A controller on 127.0.0.1 with three rooms booked for a session open now (`mode`), signed in as admin."""
    port = free_port()
    clock = ManualClock(datetime.now(UTC))  # the node checks tokens against the real time
    config = make_config(tmp_path, public_url=f"http://127.0.0.1:{port}", host="127.0.0.1", port=port)
    app = build_app(config, clock=clock, passwords=Passwords(cheap_hasher()), secret_key=b"k" * 32)
    client = await aiohttp_client(app, server_kwargs={"port": port})
    world = await seed(app)
    origin = {"Origin": f"http://127.0.0.1:{port}"}
    response = await client.post("/signin", data={"username": world.admin, "password": PASSWORD, "next": "/"},
                                 headers=origin, allow_redirects=False)  # fmt: skip
    assert response.status == 303, await response.text()
    admin = Caller(client, await csrf_token(client))
    admin._headers = lambda: {**origin, "X-CSRF-Token": admin.token}  # type: ignore[method-assign]
    rooms = []
    for name in ("Phòng họp Sở", "Phòng lưỡng dụng A", "Phòng lưỡng dụng B"):
        status, body = await admin.send("POST", f"/api/units/{world.school}/rooms", {"name": name, "capacity": 30})
        assert status == 201, body
        rooms.append(int(body["id"]))
    start = (clock.now() + timedelta(minutes=1)).replace(second=0, microsecond=0)
    booking = {"title": "Họp giao ban", "mode": mode, "host_room": rooms[0], "participant_rooms": rooms[1:],
               "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}  # fmt: skip
    status, created = await admin.send("POST", "/api/bookings", booking)
    assert status == 201, created
    status, links = await admin.get(f"/api/bookings/{created['id']}/join-links")
    urls = [str(link["url"]) for link in links["links"]]
    assert status == 200 and len(urls) == 3
    return World(app, clock, admin, int(created["id"]), rooms, urls)


async def enter(page: Page, url: str, name: str = "") -> str:
    """Open a join link, type a name, press join: the participant id the node gave."""
    await page.navigate(url)
    await page.wait_for("#join")
    if name:
        await page.type("#name", name)
    if await page.evaluate("document.getElementById('meeting').dataset.role !== 'observer'"):
        await page.wait_until("document.querySelector('#mic-select').options.length > 0", timeout=15)
    await page.click("#join")
    return str(await page.wait_until("document.getElementById('meeting').dataset.participant", timeout=20))


async def stats(page: Page) -> dict[str, dict[str, float]]:
    """participant id -> {video frames decoded, audio energy, audio packets} from the page's inbound streams."""
    report = await page.evaluate(STATS)
    out: dict[str, dict[str, float]] = {}
    for s in report["inbound"]:
        if not s["participant"]:
            continue
        entry = out.setdefault(s["participant"], {"frames": 0, "energy": 0.0, "audio_packets": 0})
        if s["kind"] == "video":
            entry["frames"] += s["framesDecoded"]
        else:
            entry["energy"] += s["totalAudioEnergy"]
            entry["audio_packets"] += s["packetsReceived"]
    return out


async def hears_and_sees(page: Page, others: list[str], timeout: float = 40.0) -> dict[str, dict[str, float]]:  # noqa: ASYNC109
    ids = json.dumps(others)
    check = f"""(async () => {{
        const s = await {STATS};
        const ok = (id) => s.inbound.some(x => x.participant === id && x.kind === 'video' && x.framesDecoded > 5)
            && s.inbound.some(x => x.participant === id && x.kind === 'audio' && x.totalAudioEnergy > 0);
        return {ids}.every(ok);
    }})()"""
    try:
        await page.wait_until(check, timeout=timeout, interval=0.5)
    except TimeoutError:
        seen = await page.evaluate(f"{STATS}.then(s => s.inbound.map(x => [x.mid, x.kind, x.participant, x.source,"
                                   " x.packetsReceived, x.framesDecoded, x.totalAudioEnergy]))")  # fmt: skip
        raise AssertionError(f"not every one of {others} seen and heard within {timeout} s; inbound: {seen}") from None
    return await stats(page)


async def keeps_coming(page: Page, other: str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """More video frames decoded (10 more) and more audio energy from `other` than now."""
    now = (await stats(page)).get(other, {"frames": 0, "energy": 0.0})
    grows = f"""(async () => {{ const s = await {STATS};
        const v = s.inbound.filter(x => x.participant === '{other}' && x.kind === 'video')
            .reduce((a, x) => a + x.framesDecoded, 0);
        const e = s.inbound.filter(x => x.participant === '{other}' && x.kind === 'audio')
            .reduce((a, x) => a + x.totalAudioEnergy, 0);
        return v > {now["frames"]} + 10 && e > {now["energy"]}; }})()"""
    await page.wait_until(grows, timeout=timeout, interval=0.5)
