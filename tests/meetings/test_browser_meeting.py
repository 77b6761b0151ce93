"""Three headless Chromium participants (tabs of one browser, fake camera and microphone) join one session through
the join links and pages, through a real controller and a real media node on 127.0.0.1:
- each decodes the others' video and hears their audio (framesDecoded and audio energy from getStats keep growing);
- an observer (a fourth tab) receives everyone and sends nothing, and only the host's list shows it;
- one shares a screen and the others decode it; one picks another microphone and is still heard;
- the host mutes one: its audio stops reaching the others while the host's keeps coming;
- the host removes one with the button next to its name.
Bounded: one browser, four tabs, about 15 s."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from common.clock import ManualClock
from controller.app import build_app
from controller.medianodes import MEDIA_NODES
from controller.security.passwords import Passwords, cheap_hasher
from protocol.media import NodeLoad, NodeReport
from tests.browser import MEDIA_FLAGS, Browser, Page
from tests.controller.bookings.conftest import Caller
from tests.controller.conftest import PASSWORD, csrf_token, make_config, seed
from tests.meetings.nodes import meeting_node
from tests.ports import free_port

STATS = "window.ketnoiMeeting.stats()"
ServerClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
"""pytest-aiohttp's `aiohttp_client`, called with `server_kwargs` (the port the browser's origin names)."""


async def _stats(page: Page) -> dict[str, dict[str, float]]:
    """participant id -> {video frames decoded, audio energy, audio packets} from the page's inbound streams."""
    stats = await page.evaluate(STATS)
    out: dict[str, dict[str, float]] = {}
    for s in stats["inbound"]:
        if not s["participant"]:
            continue
        entry = out.setdefault(s["participant"], {"frames": 0, "energy": 0.0, "audio_packets": 0})
        if s["kind"] == "video":
            entry["frames"] += s["framesDecoded"]
        else:
            entry["energy"] += s["totalAudioEnergy"]
            entry["audio_packets"] += s["packetsReceived"]
    return out


async def _hears_and_sees(page: Page, others: list[str], timeout: float = 40.0) -> dict[str, dict[str, float]]:  # noqa: ASYNC109
    ids = json.dumps(others)
    check = f"""(async () => {{
        const s = await {STATS};
        const ok = (id) => s.inbound.some(x => x.participant === id && x.kind === 'video' && x.framesDecoded > 5)
            && s.inbound.some(x => x.participant === id && x.kind === 'audio' && x.totalAudioEnergy > 0);
        return {ids}.every(ok);
    }})()"""
    await page.wait_until(check, timeout=timeout, interval=0.5)
    return await _stats(page)


async def test_three_browsers_see_and_hear_each_other(aiohttp_client: ServerClient, tmp_path: Path) -> None:
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
    booking = {"title": "Họp giao ban", "mode": "meeting", "host_room": rooms[0], "participant_rooms": rooms[1:],
               "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}  # fmt: skip
    status, created = await admin.send("POST", "/api/bookings", booking)
    assert status == 201, created
    status, links = await admin.get(f"/api/bookings/{created['id']}/join-links")
    urls = [link["url"] for link in links["links"]]
    assert status == 200 and len(urls) == 3
    status, observing = await admin.get(
        f"/api/bookings/{created['id']}/join-links", room=str(rooms[1]), role="observer"
    )
    assert status == 200

    async with meeting_node(secret=app[MEDIA_NODES].secret, node_id="media-browser") as node:
        load = NodeLoad(rooms=0, relays=0, publishers=0, subscribers=0, streams_out=0, cpu=0.0)
        app[MEDIA_NODES].registry.report(
            NodeReport(node_id="media-browser", public_url=node.url, control_url=node.url, version="t",
                       capacity_streams=100, load=load)
        )  # fmt: skip
        async with Browser.launch(tmp_path, extra_flags=MEDIA_FLAGS) as browser:
            pages = [browser.page, await browser.new_page(), await browser.new_page()]
            for page, url, name in zip(pages, urls, ("Chủ trì", "Trường A", "Trường B"), strict=True):
                await page.navigate(url)
                await page.wait_for("#join")
                await page.type("#name", name)
                await page.wait_until("document.querySelector('#mic-select').options.length > 0", timeout=15)
                await page.click("#join")
            ids = []
            for page in pages:
                ids.append(await page.wait_until("document.getElementById('meeting').dataset.participant", timeout=20))
            assert len(set(ids)) == 3
            # An observer (a fourth tab) receives everyone and sends nothing: no publish connection, no outbound
            # stream, and only the host's list shows it.
            observer = await browser.new_page()
            await observer.navigate(observing["links"][0]["url"])
            await observer.wait_for("#join")
            await observer.click("#join")
            await _hears_and_sees(observer, ids)
            assert (await observer.evaluate(STATS))["outbound"] == []
            assert await observer.evaluate("window.ketnoiMeeting.pub === null")
            await pages[0].wait_until("document.querySelectorAll('#people li').length === 4", timeout=10)
            assert await pages[1].evaluate("document.querySelectorAll('#people li').length") == 3
            await observer.click("#leave-btn")
            await pages[0].wait_until("document.querySelectorAll('#people li').length === 3", timeout=10)
            first: list[dict[str, Any]] = []
            for page, me in zip(pages, ids, strict=True):
                first.append(await _hears_and_sees(page, [i for i in ids if i != me]))
            # ... and it keeps coming: every stream grows again.
            for page, me, before in zip(pages, ids, first, strict=True):
                later = await _stats(page)
                for other in (i for i in ids if i != me):
                    grows = f"""(async () => {{ const s = await {STATS};
                        const v = s.inbound.filter(x => x.participant === '{other}' && x.kind === 'video')
                            .reduce((a, x) => a + x.framesDecoded, 0);
                        const e = s.inbound.filter(x => x.participant === '{other}' && x.kind === 'audio')
                            .reduce((a, x) => a + x.totalAudioEnergy, 0);
                        return v > {later[other]["frames"]} + 10 && e > {later[other]["energy"]}; }})()"""
                    await page.wait_until(grows, timeout=20, interval=0.5)
                    assert later[other]["frames"] >= before[other]["frames"]
            # The second participant shares its screen (a click with a user gesture, as getDisplayMedia requires):
            # the others get it as a wide tile, decoded.
            click = "document.getElementById('share-btn').click()"
            await pages[1].send("Runtime.evaluate", {"expression": click, "userGesture": True})
            for page in (pages[0], pages[2]):
                await page.wait_until(
                    f"""(async () => {{ const s = await {STATS};
                    return s.inbound.some(x => x.participant === '{ids[1]}' && x.source === 'screen'
                        && x.framesDecoded > 5); }})()""",
                    timeout=20, interval=0.5,
                )  # fmt: skip
                assert await page.evaluate("document.querySelector('.tile.screen') !== null")
            # The third participant picks another microphone during the call: the others keep hearing it.
            second_mic = await pages[2].evaluate("document.querySelectorAll('#mic-select option')[1].value")
            await pages[2].fill("#mic-select", second_mic)
            await pages[2].wait_until("window.ketnoiMeeting.mic.label === 'Fake Audio Input 1'", timeout=10)
            before_switch = (await _stats(pages[0]))[ids[2]]
            grows = f"""(async () => {{ const s = await {STATS};
                const a = s.inbound.filter(x => x.participant === '{ids[2]}' && x.kind === 'audio');
                return a.reduce((n, x) => n + x.packetsReceived, 0) > {before_switch["audio_packets"]} + 50
                    && a.reduce((n, x) => n + x.totalAudioEnergy, 0) > {before_switch["energy"]}; }})()"""
            await pages[0].wait_until(grows, timeout=10, interval=0.3)  # a second of it: not packets in flight
            # The host mutes the second participant with the button next to its name: its audio stops reaching the
            # third while the host's goes on.
            mid_of = f"""(async () => {{ const s = await {STATS};
                const x = s.inbound.find(x => x.participant === '{ids[1]}' && x.kind === 'audio');
                return x ? x.mid : null;
            }})()"""
            muted_mid = await pages[2].evaluate(mid_of)
            assert muted_mid is not None
            await pages[0].click(f"#people button[data-action=mute][data-target='{ids[1]}']")
            await pages[1].wait_until("window.ketnoiMeeting.mutedByHost === true", timeout=10)
            packets = f"""(async () => {{ const s = await {STATS};
                const x = s.inbound.find(x => x.pc === 'sub' && x.mid === '{muted_mid}');
                return x.packetsReceived; }})()"""
            host_audio = f"""(async () => {{ const s = await {STATS};
                return s.inbound.filter(x => x.participant === '{ids[0]}' && x.kind === 'audio')
                    .reduce((a, x) => a + x.packetsReceived, 0); }})()"""
            await pages[2].wait_until(f"window.ketnoiMeeting.slots['{muted_mid}'].participant === null", timeout=10)
            heard = await pages[2].evaluate(host_audio)  # what was in flight drains during a second of host audio
            await pages[2].wait_until(f"{host_audio}.then(n => n > {heard} + 50)", timeout=10, interval=0.2)
            stopped, heard = await pages[2].evaluate(packets), await pages[2].evaluate(host_audio)
            await pages[2].wait_until(f"{host_audio}.then(n => n > {heard} + 50)", timeout=10, interval=0.2)
            assert await pages[2].evaluate(packets) == stopped
            people = await pages[0].evaluate("document.querySelectorAll('#people li').length")
            assert people == 3
            # The host removes the third participant with the button next to its name.
            await pages[0].click(f"#people button[data-action=remove][data-target='{ids[2]}']")
            await pages[2].wait_until("document.getElementById('meeting').dataset.closed === 'removed'", timeout=10)
            await pages[0].wait_until("document.querySelectorAll('#people li').length === 2", timeout=10)
            assert "mời bạn ra" in await pages[2].text("#notice")
            assert await pages[2].evaluate("document.getElementById('rejoin').hidden")  # removed: no way back in
            assert not await observer.evaluate("document.getElementById('rejoin').hidden")  # it left: may come back
            assert node.meetings.load().subscribers == 2
