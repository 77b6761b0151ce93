"""The parent live view end to end, as the demo runs it: controller, media node, agent and simulated cameras as
separate processes, and headless Chromium as the parent's phone.

The parent signs in, sees their child's class cameras (never the staff-only one), opens one: the controller
authorizes, places the relay and has the agent publish the camera to the node; the page plays it through
whep-player.js and the decoded frames keep growing. The school sees the view in its log. Then the school
revokes the parent's guardianship: the node drops the viewer within 5 s and the page says why it stopped.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser import Browser
from tests.test_end_to_end import Demo, demo, get_json, signed_in
from tests.waiting import eventually_true

__all__ = ["demo"]

FRAMES = "document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames"


async def _csrf(http: aiohttp.ClientSession, url: str) -> str:
    token = (await get_json(http, f"{url}/api/session"))["csrf_token"]
    assert isinstance(token, str)
    return token


async def _node_viewers(demo_: Demo) -> int:
    match = re.search(r"media node:\s+(http://127\.0\.0\.1:\d+)/", demo_.output)
    assert match, demo_.output
    async with aiohttp.ClientSession() as http, http.get(f"{match.group(1)}/healthz") as response:
        health: dict[str, Any] = await response.json()
    return int(health["viewers"])


@pytest.mark.slow
async def test_a_parent_watches_the_class_camera_and_a_revocation_stops_it(demo: Demo, tmp_path: Path) -> None:
    username, password = demo.login("phuhuynh")
    school = int(re.search(r"/units/(\d+)/live", demo.output).group(1))  # type: ignore[union-attr]
    async with Browser.launch(tmp_path) as browser:
        page = browser.page
        await page.navigate(f"{demo.url}/signin")
        await page.wait_for("input[name=username]")
        await page.type("input[name=username]", username)
        await page.type("input[name=password]", password)
        await page.click("form button[type=submit]")
        await page.wait_until("location.pathname === '/my/children'")  # a parent lands on their children
        await page.navigate(f"{demo.url}/live")
        await page.wait_for("button.watch")
        text = await page.text("main")
        assert "Góc chơi" in text and "Bàn ăn" in text and "Nguyễn Minh An" in text
        assert "Nhà vệ sinh" not in text
        await page.click("button.watch")
        await page.wait_for("#status[data-state=live]", timeout=30)
        first = int(await page.evaluate(FRAMES))
        await page.wait_until(f"{FRAMES} > {first + 25}", timeout=20)  # a second of the camera's 25 fps, decoded
        assert await _node_viewers(demo) == 1
        shot = await page.screenshot(tmp_path / "live-phone.png")  # a phone's width: nothing scrolls sideways
        assert shot.stat().st_size > 5000
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        staff = await signed_in(demo, "nhatruong")
        try:

            async def played() -> bool:  # the node reports the view as playing (every 2 s)
                log = await get_json(staff, f"{demo.url}/api/units/{school}/live/sessions")
                return bool(log["views"] and log["views"][0]["played"])

            await eventually_true(played, timeout=10, interval=0.2)
            log = await get_json(staff, f"{demo.url}/api/units/{school}/live/sessions")
            (view,) = log["views"]
            assert view["parent"] == "phuhuynh" and view["ended_at"] is None and view["child"] == "Nguyễn Minh An"
            child = await get_json(staff, f"{demo.url}/api/children/{view['child_id']}")
            parent_id = next(g["user_id"] for g in child["guardians"] if g["username"] == "phuhuynh")
            headers = {"Origin": demo.url, "X-CSRF-Token": await _csrf(staff, demo.url)}
            revoked_at = time.monotonic()
            async with staff.post(
                f"{demo.url}/api/children/{view['child_id']}/guardians/{parent_id}/revoke", headers=headers
            ) as response:
                assert response.status == 200, await response.text()

            async def dropped() -> bool:
                return await _node_viewers(demo) == 0

            await eventually_true(dropped, timeout=5, interval=0.1)
            assert time.monotonic() - revoked_at < 5
            await page.wait_for("#status[data-state=stopped]", timeout=20)
            reason = await page.evaluate("document.getElementById('status').getAttribute('data-reason')")
            assert reason == "not_your_class"
            assert "Con của bạn không học lớp có camera này." in await page.text("#status")
            log = await get_json(staff, f"{demo.url}/api/units/{school}/live/sessions")
            assert log["views"][0]["end_reason"] == "not_your_class" and log["views"][0]["played"] is True
        finally:
            await staff.close()
