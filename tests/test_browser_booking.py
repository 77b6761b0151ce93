"""A department booker books a session through the pages in headless Chromium and sees it in the room's week;
a clashing booking is refused next to the form with a message naming the room.

The controller runs as `python -m controller serve` (SQLite, loopback); the rooms and the booker are made through
the commands and the JSON API, everything after the sign-in through the browser (tests/browser.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.browser import Browser
from tests.ports import free_port
from tests.waiting import eventually_true

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass
class Controller:
    url: str
    booker: tuple[str, str]
    rooms: dict[str, int]
    workdir: Path


async def _command(env: dict[str, str], *args: str, stdin: bytes | None = None) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, "--json", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate(stdin)
    assert process.returncode == 0, err.decode()
    answer: dict[str, object] = json.loads(out)
    return answer


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[Controller]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KETNOI_CONTROLLER_DATA_DIR": str(tmp_path / "controller"),
        "KETNOI_CONTROLLER_HOST": "127.0.0.1",
        "KETNOI_CONTROLLER_PORT": str(port),
        "KETNOI_CONTROLLER_PUBLIC_URL": url,
        "KETNOI_CONTROLLER_COOKIE_SECURE": "false",
        "KETNOI_CONTROLLER_LOG_LEVEL": "WARNING",
    }
    department = await _command(env, "create-unit", "--name", "Sở GD&ĐT", "--kind", "department")
    school = await _command(
        env, "create-unit", "--name", "THCS Lê Lợi", "--kind", "school", "--level", "lower_secondary",
        "--parent", str(department["id"]),
    )  # fmt: skip
    admin = await _command(env, "create-admin", "--username", "admin")
    log = (tmp_path / "controller.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", "serve", env=env, stdout=log, stderr=log
    )
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:

            async def up() -> bool:
                try:
                    async with http.get(f"{url}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually_true(up, timeout=30)
            origin = {"Origin": url}
            form = {"username": "admin", "password": str(admin["password"]), "next": "/"}
            async with http.post(f"{url}/signin", data=form, headers=origin, allow_redirects=False) as response:
                assert response.status == 303
            async with http.get(f"{url}/api/session") as response:
                headers = {**origin, "X-CSRF-Token": (await response.json())["csrf_token"]}
            rooms = {}
            for name in ("Phòng họp trực tuyến", "Phòng đa năng"):
                room = {"name": name, "capacity": 40}
                async with http.post(f"{url}/api/units/{school['id']}/rooms", json=room, headers=headers) as response:
                    assert response.status == 201, await response.text()
                    rooms[name] = int((await response.json())["id"])
            body: dict[str, object] = {"username": "booker", "role": "department_booker", "unit_id": department["id"]}
            async with http.post(f"{url}/api/users", json=body, headers=headers) as response:
                assert response.status == 201, await response.text()
                password = str((await response.json())["password"])
        yield Controller(url, ("booker", password), rooms, tmp_path)
    finally:
        process.terminate()
        await process.wait()
        log.close()


async def test_a_booker_books_through_the_pages_and_a_clash_names_the_room(controller: Controller) -> None:
    day = (datetime.now(ZONE) + timedelta(days=1)).date()
    host, other = controller.rooms["Phòng họp trực tuyến"], controller.rooms["Phòng đa năng"]
    async with Browser.launch(controller.workdir) as browser:
        page = browser.page
        await page.navigate(f"{controller.url}/signin")
        await page.wait_for("input[name=username]")
        await page.type("input[name=username]", controller.booker[0])
        await page.type("input[name=password]", controller.booker[1])
        await page.click("form button[type=submit]")
        await page.wait_for("main h1", text="Lịch của tôi")

        await page.navigate(f"{controller.url}/bookings/new?room={host}")
        await page.wait_for("form.booking")
        assert await page.evaluate("document.querySelector('select[name=host_room]').value") == str(host)
        await page.type("input[name=title]", "Họp chuyên môn Toán")
        await page.type("textarea[name=agenda]", "Đổi mới phương pháp")
        await page.fill("select[name=mode]", "meeting")
        await page.check(f"input[name=participant_rooms][value='{other}']")
        await page.fill("input[name=date]", day.isoformat())
        await page.fill("input[name=start_time]", "09:00")
        await page.fill("input[name=end_time]", "10:30")
        await page.click("form.booking button[type=submit]")
        await page.wait_for(".note", text="Đã đặt lịch")
        assert "Phòng đa năng" in await page.text("main")

        await page.navigate(f"{controller.url}/rooms/{other}/week?start={day.isoformat()}")
        await page.wait_for(".week .slot", text="Họp chuyên môn Toán")
        assert "09:00–10:30" in await page.text(".week")
        shot = await page.screenshot(controller.workdir / "week-phone.png")
        assert shot.stat().st_size > 5000
        # On a phone the days stack in one column as wide as the screen: nothing scrolls sideways.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        await page.navigate(f"{controller.url}/bookings/new?room={other}")
        await page.wait_for("form.booking")
        await page.type("input[name=title]", "Dự giờ lớp 8A")
        await page.fill("select[name=mode]", "observation")
        await page.fill("input[name=date]", day.isoformat())
        await page.fill("input[name=start_time]", "10:00")
        await page.fill("input[name=end_time]", "11:00")
        await page.click("form.booking button[type=submit]")
        await page.wait_for("#form-error", text="Phòng đa năng")
        message = await page.text("#form-error")
        assert "Họp chuyên môn Toán" in message
        assert await page.evaluate("document.querySelector('input[name=title]').value") == "Dự giờ lớp 8A"
        assert await page.evaluate("document.querySelector('input[name=start_time]').value") == "10:00"
        await page.screenshot(controller.workdir / "form-phone.png")
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
