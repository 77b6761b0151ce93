"""The demo's parent live view: the parent `phuhuynh` (made by the booking seed) has a child in class Lá 1 of
the kindergarten; this makes that class watchable now and shows what a parent must not see.

Through the JSON API as the administrator: a classmate for the child, a consent for every child of the class,
two ready cameras shown to Lá 1, a third marked staff-only (toilets: never shown to parents), and viewing hours
that are open now (today all day, other weekdays 07:00-17:00). Returns the lines the demo prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from demo.api import Api

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CLASS_NAME = "Lá 1"


class LiveSeedFailed(Exception):
    """The controller refused a step of the live-view seed."""


async def seed_live(url: str, admin_password: str, school_id: int, cameras: list[dict[str, Any]]) -> list[str]:
    ready = [c for c in cameras if c["state"] == "ready"]
    if len(ready) < 3:
        raise LiveSeedFailed(f"the live-view demo needs 3 ready cameras, the school has {len(ready)}")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=30)) as http:
        api = await Api.sign_in(http, url, admin_password)
        classes = (await api.call("GET", f"/api/units/{school_id}/classes"))["classes"]
        klass = next((c for c in classes if c["name"] == CLASS_NAME), None)
        if klass is None:
            raise LiveSeedFailed(f"the kindergarten has no class {CLASS_NAME}")
        await api.call("POST", f"/api/units/{school_id}/children",
                       {"code": "HS002", "full_name": "Trần Thị Bình", "date_of_birth": "2021-06-02",
                        "class_id": klass["id"]})  # fmt: skip
        children = (await api.call("GET", f"/api/classes/{klass['id']}"))["children"]
        for child in children:
            await api.call("POST", f"/api/children/{child['id']}/consents", {"given_by": "Phiếu đồng ý (giấy)"})
        shown = [(ready[0], "Góc chơi"), (ready[1], "Bàn ăn")]
        for camera, label in shown:
            await api.call("PUT", f"/api/cameras/{camera['id']}/live", {"class_id": klass["id"], "label": label})
        staff_only = ready[2]
        await api.call("PUT", f"/api/cameras/{staff_only['id']}/live", {"staff_only": True, "label": "Nhà vệ sinh"})
        today = datetime.now(ZONE).weekday()
        windows = [
            {"weekday": day, "start": "00:00", "end": "24:00"} if day == today else
            {"weekday": day, "start": "07:00", "end": "17:00"}
            for day in range(7) if day < 5 or day == today
        ]  # fmt: skip
        settings = await api.call("PUT", f"/api/units/{school_id}/live/windows", {"windows": windows})
        if not settings["open_now"]:
            raise LiveSeedFailed("the viewing window should be open now")
    names = ", ".join(f"{label} ({camera['address']})" for camera, label in shown)
    return [
        "",
        "Xem trực tiếp / parent live view (đăng nhập / sign in as phuhuynh):",
        f"  {url}/live — lớp {CLASS_NAME}: {names}; mở cả ngày hôm nay / open all day today",
        f"  Camera chỉ dành cho nhân viên / staff-only (never shown to parents): Nhà vệ sinh ({staff_only['address']})",
        f"  Cài đặt và nhật ký xem / settings and view log: {url}/units/{school_id}/live (nhatruong, kythuat)",
    ]
