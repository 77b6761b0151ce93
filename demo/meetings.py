"""The demo's meeting open now: a session across the Department's room and two schools' rooms, from now for two
hours, and its join links (host, participants, an observer), so a newcomer joins from two browser tabs.

Everything goes through the controller's JSON API as the administrator, as a booker would. With `check`, it also
asks for a meeting token with the host's link until a media node has reported and the session is placed, so
`--check` proves the whole path up to the node.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from demo.api import Api, ApiRefused

TITLE = "Họp thử ngay bây giờ / Try-out meeting, open now"


async def seed_meeting(url: str, admin_password: str, *, check: bool = False, timeout: float = 60.0) -> list[str]:  # noqa: ASYNC109
    """Book the session and return the lines to print (its join links)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=30)) as http:
        api = await Api.sign_in(http, url, admin_password)
        units = (await api.call("GET", "/api/units"))["units"]
        department = next(u for u in units if u["kind"] == "department")
        schools = [u for u in units if u["kind"] == "school"][:2]
        host = (await api.call("GET", f"/api/units/{department['id']}/rooms"))["rooms"][0]
        others = [(await api.call("GET", f"/api/units/{s['id']}/rooms"))["rooms"][0] for s in schools]
        unit_of = {host["id"]: department["name"]} | {r["id"]: s["name"] for r, s in zip(others, schools, strict=True)}
        start = datetime.now(UTC).replace(second=0, microsecond=0)
        booking = await api.call(
            "POST", "/api/bookings",
            {"title": TITLE, "mode": "meeting", "host_room": host["id"],
             "participant_rooms": [room["id"] for room in others], "start": start.isoformat(),
             "end": (start + timedelta(hours=2)).isoformat(), "agenda": "Thử camera, micro, chia sẻ màn hình"},
        )  # fmt: skip
        links = await api.call("GET", f"/api/bookings/{booking['id']}/join-links?role=host,participant,observer")
        by_role: dict[str, list[dict[str, Any]]] = {}
        for link in links["links"]:
            by_role.setdefault(link["role"], []).append(link)
        chosen = [by_role["host"][0], *[link for link in by_role["participant"] if link["room"] != host["id"]][:2]]
        chosen += [link for link in by_role["observer"] if link["room"] != host["id"]][:1]
        if check:
            await _wait_for_placement(http, url, chosen[0]["url"], timeout)
    lines = [f"\nHọp trực tuyến đang mở / a meeting open now: {TITLE} (2 giờ / hours)"]
    lines += ["  Mở hai liên kết trong hai thẻ trình duyệt / open two links in two browser tabs:"]
    for link in chosen:
        lines.append(f"  {link['role']:<12} {unit_of.get(link['room'], '')}, {link['room_name']}: {link['url']}")
    return lines


async def _wait_for_placement(http: aiohttp.ClientSession, url: str, join_url: str, timeout: float) -> None:  # noqa: ASYNC109
    """Ask for a meeting token until a media node has reported (the page would do the same on its button)."""
    token = join_url.rsplit("/", 1)[1]
    deadline = time.monotonic() + timeout
    while True:
        async with http.post(f"{url}/api/meetings/join", json={"token": token}, headers={"Origin": url}) as response:
            if response.status == 200:
                return
            answer = await response.json()
            if response.status != 503 or time.monotonic() > deadline:
                raise ApiRefused(f"the demo meeting cannot be joined: HTTP {response.status} {answer}")
        await asyncio.sleep(0.5)
