"""Revocation closes open views within 5 s: a guardianship revoked, the child moved to another class, a consent
withdrawn, the camera marked staff-only, the viewing window's end, the parent's account disabled. The fake node
on loopback records the CloseRequest; the view ends in the database with the reason, is audited, and a new
request is refused. A view the node stops playing ends too (`viewer_left`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, text

from common.clock import ManualClock
from controller import state
from controller.app import build_app
from controller.live.models import LiveSession
from controller.live.watcher import WATCHER
from controller.medianodes import MEDIA_NODES
from controller.security.passwords import Passwords, cheap_hasher
from protocol.media import MediaTokens, TokenKind, camera_room
from tests.controller.conftest import AiohttpClient, Client, sign_in
from tests.controller.live.conftest import DEVICE_A, Live, audits, call
from tests.waiting import eventually, eventually_true

Change = Callable[[Client, Live, ManualClock], Awaitable[None]]


async def _as_staff(client: Client, live: Live, method: str, path: str, body: Any = None) -> None:
    await sign_in(client, live.people.staff)
    status, answer = await call(client, method, path, body)
    assert status in (200, 201), answer


async def _revoke(client: Client, live: Live, clock: ManualClock) -> None:
    await _as_staff(client, live, "POST", f"/api/children/{live.people.child}/guardians/{live.people.parent_id}/revoke")


async def _move(client: Client, live: Live, clock: ManualClock) -> None:
    await _as_staff(
        client, live, "POST", f"/api/children/{live.people.child}/move", {"class_id": live.people.other_class}
    )


async def _withdraw(client: Client, live: Live, clock: ManualClock) -> None:
    await sign_in(client, live.people.staff)
    _, child = await call(client, "GET", f"/api/children/{live.people.sibling}")
    consent = child["consents"][0]["id"]
    await _as_staff(client, live, "POST", f"/api/children/{live.people.sibling}/consents/{consent}/withdraw")


async def _staff_only(client: Client, live: Live, clock: ManualClock) -> None:
    await _as_staff(client, live, "PUT", f"/api/cameras/{live.cameras[1]}/live", {"staff_only": True})


async def _window_ends(client: Client, live: Live, clock: ManualClock) -> None:
    # Today's window now ends at 08:02 local (the clock is just past 08:00); the node keeps reporting every 5 s.
    windows = [{"weekday": 0, "start": "07:00", "end": "08:02"}]
    await _as_staff(client, live, "PUT", f"/api/units/{live.people.school}/live/windows", {"windows": windows})
    assert live.node.closes == []
    for _ in range(30):
        await clock.advance(5)
        await live.node.send_report(client)


async def _disabled(client: Client, live: Live, clock: ManualClock) -> None:
    await sign_in(client, live.people.admin)
    status, answer = await call(client, "POST", f"/api/users/{live.people.parent_id}/disable")
    assert status == 200, answer


CHANGES = {
    "guardianship_revoked": (_revoke, "not_your_class"),
    "child_moved": (_move, "not_your_class"),
    "consent_withdrawn": (_withdraw, "consent_missing"),
    "camera_staff_only": (_staff_only, "staff_only"),
    "window_ends": (_window_ends, "outside_window"),
    "account_disabled": (_disabled, "not_your_class"),
}


async def _watching(client: Client, app: web.Application, live: Live, clock: ManualClock) -> tuple[int, str]:
    status, started = await call(client, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": DEVICE_A})
    assert status == 200, started
    claims = MediaTokens(app[MEDIA_NODES].secret, clock).verify(
        started["token"], node="node-1", kind=TokenKind.VIEW, room=camera_room(live.cameras[1])
    )
    assert claims.session is not None
    live.node.view_sessions.append(claims.session)  # the browser plays it
    await live.node.send_report(client)
    return int(started["session"]), claims.session


async def _row(app: web.Application, session_id: int) -> LiveSession:
    async with app[state.DB]() as session:
        row = (await session.execute(select(LiveSession).where(LiveSession.id == session_id))).scalar_one()
    return row


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_revocation_closes_the_open_view_within_5_s(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock, change: str
) -> None:
    session_id, key = await _watching(pclient, papp, live, clock)
    await eventually_true(lambda: _played(papp, session_id), timeout=5, interval=0.02)
    assert live.node.closes == []
    make, reason = CHANGES[change]
    await make(pclient, live, clock)
    await eventually(lambda: key in live.node.closed_sessions(), timeout=5)
    row = await _row(papp, session_id)
    assert row.ended_at is not None and row.end_reason == reason
    (end,) = [a for a in await audits(papp, "live.end") if a.details["session"] == session_id]
    assert end.details["reason"] == reason and end.details["device"] == DEVICE_A and end.actor == "system:live"
    if change != "account_disabled":
        await sign_in(pclient, live.people.parent)
        status, answer = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": DEVICE_A})
        assert status == 403 and answer["reason"] == reason
        assert (await audits(papp, "live.refuse"))[-1].details["reason"] == reason


async def _played(app: web.Application, session_id: int) -> bool:
    return (await _row(app, session_id)).seen_at is not None


async def test_a_view_the_node_stops_playing_ends(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock
) -> None:
    session_id, key = await _watching(pclient, papp, live, clock)
    await eventually_true(lambda: _played(papp, session_id), timeout=5, interval=0.02)
    await clock.advance(2)
    live.node.view_sessions.remove(key)  # the viewer closed the tab
    await live.node.send_report(pclient)

    async def ended() -> bool:
        return (await _row(papp, session_id)).end_reason == "viewer_left"

    await eventually_true(ended, timeout=5, interval=0.02)
    _, history = await call(pclient, "GET", "/api/live/history")
    (view,) = history["views"]
    assert view["end_reason"] == "viewer_left" and view["played"] is True and view["child_id"] == live.people.child


async def test_a_view_never_played_ends_after_the_grace(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock
) -> None:
    status, started = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[2], "device": DEVICE_A})
    assert status == 200
    for _ in range(5):  # 25 s, the node reporting every 5 s without the view
        await clock.advance(5)
        await live.node.send_report(pclient)
    assert (await _row(papp, started["session"])).ended_at is None
    for _ in range(2):
        await clock.advance(5)
        await live.node.send_report(pclient)

    async def ended() -> bool:
        return (await _row(papp, started["session"])).end_reason == "never_played"

    await eventually_true(ended, timeout=5, interval=0.02)


async def test_views_close_when_rights_cannot_be_checked(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    session_id, key = await _watching(pclient, papp, live, clock)
    await eventually_true(lambda: _played(papp, session_id), timeout=5, interval=0.02)
    async with papp[state.ENGINE].begin() as conn:  # the database stops answering for live views
        await conn.execute(text("ALTER TABLE live_sessions RENAME TO live_sessions_away"))
    try:
        for _ in range(3):
            await clock.advance(1)
            await live.node.send_report(pclient)
        assert key not in live.node.closed_sessions()  # a hiccup of 3 s closes nothing
        for _ in range(3):
            await clock.advance(1)
            await live.node.send_report(pclient)
        await eventually(lambda: key in live.node.closed_sessions(), timeout=5)
        assert "rights cannot be checked" in caplog.text
    finally:
        async with papp[state.ENGINE].begin() as conn:
            await conn.execute(text("ALTER TABLE live_sessions_away RENAME TO live_sessions"))


async def test_open_views_survive_a_controller_restart(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock, aiohttp_client: AiohttpClient
) -> None:
    session_id, key = await _watching(pclient, papp, live, clock)
    await eventually_true(lambda: _played(papp, session_id), timeout=5, interval=0.02)
    for _ in range(5):  # watched for 15 s
        await clock.advance(3)
        await live.node.send_report(pclient)
    await pclient.close()  # the controller stops; the node goes on playing
    again = build_app(
        papp[state.CONFIG], clock=clock, passwords=Passwords(cheap_hasher()), secret_key=papp[state.SECRET_KEY]
    )
    client = await aiohttp_client(again)
    watcher = again[WATCHER]
    passes = watcher.passes
    await clock.advance(1)  # a pass before the node's first report to this controller: nothing ends
    await eventually(lambda: watcher.passes > passes, timeout=5)
    assert (await _row(again, session_id)).ended_at is None
    for _ in range(4):
        await live.node.send_report(client)
        await clock.advance(3)
    assert (await _row(again, session_id)).ended_at is None and key not in live.node.closed_sessions()
    # Without reports the view ends once the node is lost.
    await clock.advance(11)
    await eventually_true(lambda: _ended(again, session_id, "media_node_lost"), timeout=5, interval=0.02)


async def _ended(app: web.Application, session_id: int, reason: str) -> bool:
    return (await _row(app, session_id)).end_reason == reason


async def test_a_view_token_used_after_its_view_ended_is_closed_again(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock
) -> None:
    status, started = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": DEVICE_A})
    assert status == 200
    claims = MediaTokens(papp[MEDIA_NODES].secret, clock).verify(
        started["token"], node="node-1", kind=TokenKind.VIEW, room=camera_room(live.cameras[1])
    )
    await _revoke(pclient, live, clock)  # before the browser used its token
    await eventually(lambda: claims.session in live.node.closed_sessions(), timeout=5)
    closes = len(live.node.closes)
    assert claims.session is not None
    live.node.view_sessions.append(claims.session)  # the token is used within its minute: the node plays it
    live.node.view_sessions.append("f" * 32)  # and a session this controller never issued
    await live.node.send_report(pclient)
    await eventually(lambda: len(live.node.closes) > closes, timeout=5)
    assert set(live.node.closes[-1].view_sessions) == {claims.session, "f" * 32}
    assert live.node.view_sessions == []
