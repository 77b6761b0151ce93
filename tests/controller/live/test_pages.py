"""The live-view pages: the parent's page lists only their children's class cameras (never the staff-only one),
says why a camera is closed and when it opens, in Vietnamese and with ?lang=en, runs only its own script under
its own CSP (the media node's origin allowed for WHEP); the school's page sets cameras, hours, holidays and the
consent policy through forms and shows the view log; names are escaped."""

from __future__ import annotations

from aiohttp import web

from common.clock import ManualClock
from tests.controller.conftest import ORIGIN, Client, csrf_token, sign_in
from tests.controller.live.conftest import DEVICE_A, Live, audits, call


async def test_the_parents_page(pclient: Client, papp: web.Application, live: Live, clock: ManualClock) -> None:
    response = await pclient.get("/live")
    assert response.status == 200
    page = await response.text()
    assert "Xem lớp trực tiếp" in page and "Nguyễn Văn An" in page and "Góc chơi" in page and "Bàn ăn" in page
    assert "Nhà vệ sinh" not in page and f'data-camera="{live.cameras[4]}"' not in page
    assert f'data-camera="{live.cameras[3]}"' not in page and f'data-camera="{live.cameras[6]}"' not in page
    assert page.count('class="watch"') == 2 and "/static/js/whep-player.js" in page
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and live.node.url in csp and "'unsafe-inline'" not in csp
    assert "<script>" not in page  # no inline script
    status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": DEVICE_A})
    assert status == 200
    page = await (await pclient.get("/live?lang=en")).text()
    assert "Live class view" in page and "Your viewing history" in page and "Still open" in page

    await clock.advance(5 * 86400)  # Saturday
    await sign_in(pclient, live.people.parent)
    page = await (await pclient.get("/live?lang=vi")).text()
    assert page.count('class="watch"') == 0 and "Ngoài giờ xem của nhà trường." in page
    assert "Mở lại lúc 2026-01-12 07:00:00" in page
    # Other roles do not get the parent's page.
    await sign_in(pclient, live.people.staff)
    assert (await pclient.get("/live", allow_redirects=False)).status == 403


async def test_the_schools_page(pclient: Client, papp: web.Application, live: Live) -> None:
    status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[2], "device": DEVICE_A})
    assert status == 200
    await sign_in(pclient, live.people.staff)
    school = live.people.school
    response = await pclient.get(f"/units/{school}/live")
    assert response.status == 200
    page = await response.text()
    assert "Cài đặt xem trực tiếp" in page and "&lt;i&gt;Lá 2&lt;/i&gt;" in page and "<i>Lá 2</i>" not in page
    assert 'value="07:00"' in page and "Nhật ký xem" in page and DEVICE_A in page and "parent" in page
    token = await csrf_token(pclient)
    form = {"csrf_token": token, "start_0": "07:30", "end_0": "11:00", "start_2": "13:00", "end_2": "16:30"}
    response = await pclient.post(f"/units/{school}/live/windows", data=form, headers=ORIGIN, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].endswith("saved=1")
    _, settings = await call(pclient, "GET", f"/api/units/{school}/live")
    assert settings["windows"] == [
        {"weekday": 0, "start": "07:30", "end": "11:00"},
        {"weekday": 2, "start": "13:00", "end": "16:30"},
    ]
    bad = {"csrf_token": token, "start_1": "16:00", "end_1": "08:00"}
    response = await pclient.post(f"/units/{school}/live/windows", data=bad, headers=ORIGIN, allow_redirects=False)
    assert response.status == 303 and "error=" in response.headers["Location"]
    page = await (await pclient.get(response.headers["Location"])).text()
    assert 'role="alert"' in page
    holidays = {"csrf_token": token, "holidays": "2026-02-16 Tết\n2026-04-30 Giải phóng"}
    response = await pclient.post(
        f"/units/{school}/live/holidays", data=holidays, headers=ORIGIN, allow_redirects=False
    )
    assert response.status == 303
    _, settings = await call(pclient, "GET", f"/api/units/{school}/live")
    assert [h["day"] for h in settings["holidays"]] == ["2026-02-16", "2026-04-30"]
    policy = {"csrf_token": token, "consent_policy": "none"}
    response = await pclient.post(
        f"/units/{school}/live/consent-policy", data=policy, headers=ORIGIN, allow_redirects=False
    )
    assert response.status == 303
    assign = {"csrf_token": token, "shown_to": "staff", "label": "Bếp"}
    response = await pclient.post(
        f"/cameras/{live.cameras[5]}/live", data=assign, headers=ORIGIN, allow_redirects=False
    )
    assert response.status == 303
    _, settings = await call(pclient, "GET", f"/api/units/{school}/live")
    by_id = {c["id"]: c for c in settings["cameras"]}
    assert settings["consent_policy"] == "none" and by_id[live.cameras[5]]["staff_only"] is True
    actions = {a.action for a in await audits(papp, "camera.assign")} | {
        a.action for a in await audits(papp, "live.windows")
    }
    assert actions == {"camera.assign", "live.windows"}
    # Without the CSRF token the forms are refused.
    response = await pclient.post(
        f"/units/{school}/live/windows", data={"start_0": "00:00", "end_0": "24:00"}, headers=ORIGIN
    )
    assert response.status == 403
    await sign_in(pclient, live.people.teacher)
    assert (await pclient.get(f"/units/{school}/live", allow_redirects=False)).status == 403
