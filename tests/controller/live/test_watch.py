"""A parent watches their child's class camera: the controller authorizes, places the relay on the node, asks
the agent to publish with a single-use token, and hands back a viewer token bound to parent, camera, device
and session. Every refusal, by every identifier, is refused and audited."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from common.clock import ManualClock
from controller.live.watcher import LIVE
from controller.medianodes import MEDIA_NODES
from protocol.media import MediaTokens, ReplayGuard, TokenKind, TokenRefused, camera_room
from protocol.uplink import PublishCamera, PublishState, StopPublishing
from tests.controller.conftest import Client, sign_in
from tests.controller.live.conftest import DEVICE_A, DEVICE_B, Live, audits, call, settle
from tests.controller.uplink_helpers import receive, send
from tests.waiting import eventually


async def _watch(client: Client, camera: Any, device: str = DEVICE_A, **extra: Any) -> tuple[int, Any]:
    return await call(client, "POST", "/api/live/watch", {"camera": camera, "device": device, **extra})


async def test_a_parent_watches_a_class_camera(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock
) -> None:
    nodes = papp[MEDIA_NODES]
    status, started = await _watch(pclient, live.cameras[1])
    assert status == 200, started
    room = camera_room(live.cameras[1])
    assert started["room"] == room and started["node"] == "node-1" and started["label"] == "Góc chơi"
    assert started["whep_url"] == f"{live.node.url}/whep/{room}" and started["ice_servers"] == []
    verifier = MediaTokens(nodes.secret, clock)
    claims = verifier.verify(started["token"], node="node-1", kind=TokenKind.VIEW, room=room)
    assert claims.subject == f"user:{live.people.parent_id}" and claims.device == DEVICE_A
    assert claims.session is not None and len(claims.session) == 32
    for node, kind, other_room, why in (
        ("node-2", TokenKind.VIEW, room, "wrong_node"),
        ("node-1", TokenKind.PUBLISH, room, "wrong_kind"),
        ("node-1", TokenKind.VIEW, camera_room(live.cameras[2]), "wrong_room"),
    ):
        with pytest.raises(TokenRefused) as refused:
            verifier.verify(started["token"], node=node, kind=kind, room=other_room)
        assert refused.value.reason == why
    guard = ReplayGuard(clock)
    guard.use(claims)
    with pytest.raises(TokenRefused, match="already used"):
        guard.use(verifier.verify(started["token"], node="node-1", kind=TokenKind.VIEW, room=room))
    later = ManualClock(clock.now())
    await later.advance(nodes.token_ttl.total_seconds())
    with pytest.raises(TokenRefused, match="expired"):
        MediaTokens(nodes.secret, later).verify(started["token"], node="node-1", kind=TokenKind.VIEW, room=room)

    # The agent is asked to publish the camera to that node, with a single-use publish token.
    publish = await receive(live.agent_ws)
    assert isinstance(publish, PublishCamera)
    assert publish.endpoint_ref == live.refs[1] and publish.whip_url == f"{live.node.url}/whip/{room}"
    publish_claims = verifier.verify(publish.token, node="node-1", kind=TokenKind.PUBLISH, room=room)
    assert publish_claims.subject.startswith("agent:")
    await send(
        live.agent_ws,
        PublishState(request_id=publish.request_id, endpoint_ref=publish.endpoint_ref, state="publishing"),
    )

    # A second device of the same parent watches the same camera: one upstream, no second publish request.
    def publishing() -> bool:
        publication = papp[LIVE].publication(live.cameras[1])
        return publication is not None and publication.state == "publishing"

    await eventually(publishing, timeout=5)
    status, second = await _watch(pclient, live.cameras[1], DEVICE_B)
    assert status == 200 and second["session"] != started["session"]
    status, overview = await call(pclient, "GET", "/api/live/cameras")
    assert status == 200 and overview["devices_in_use"] == 2 and overview["max_devices"] == 2
    (child,) = overview["children"]
    assert child["child"]["id"] == live.people.child and child["class"]["id"] == live.people.klass
    assert [(c["id"], c["available"]) for c in child["cameras"]] == [(live.cameras[2], True), (live.cameras[1], True)]
    starts = await audits(papp, "live.start")
    assert [(a.target, a.details["device"]) for a in starts] == [
        (f"camera:{live.cameras[1]}", DEVICE_A),
        (f"camera:{live.cameras[1]}", DEVICE_B),
    ]
    assert all(a.actor == "user:parent" and a.address == "127.0.0.1" for a in starts)


async def test_a_failed_publication_is_shown_to_the_parent(pclient: Client, papp: web.Application, live: Live) -> None:
    status, started = await _watch(pclient, live.cameras[2])
    assert status == 200
    publish = await receive(live.agent_ws)
    assert isinstance(publish, PublishCamera)
    failed = PublishState(
        request_id=publish.request_id, endpoint_ref=publish.endpoint_ref, state="failed", reason="RTSP 401 at camera"
    )
    await send(live.other_ws, failed)  # another school's agent cannot speak for this request
    await send(live.agent_ws, failed)

    def has_failed() -> bool:
        publication = papp[LIVE].publication(live.cameras[2])
        return publication is not None and publication.state == "failed"

    await eventually(has_failed, timeout=5)
    status, overview = await call(pclient, "GET", "/api/live/cameras")
    shown = {c["id"]: c["publish_failure"] for c in overview["children"][0]["cameras"]}
    assert shown == {live.cameras[1]: None, live.cameras[2]: "RTSP 401 at camera"}
    status, view = await call(pclient, "GET", f"/api/live/status?session={started['session']}")
    assert status == 200 and view["publish_state"] == "failed" and view["publish_reason"] == "RTSP 401 at camera"
    for bad in ("", "abc", "-1", str(2**40)):
        status, _ = await call(pclient, "GET", f"/api/live/status?session={bad}")
        assert status == 422
    status, _ = await call(pclient, "GET", "/api/live/status?session=999999")
    assert status == 404
    # Asking again after a failure asks the agent again.
    status, _ = await _watch(pclient, live.cameras[2])
    again = await receive(live.agent_ws)
    assert isinstance(again, PublishCamera) and again.request_id != publish.request_id


async def test_school_settings_and_view_log(pclient: Client, papp: web.Application, live: Live) -> None:
    status, started = await _watch(pclient, live.cameras[1])
    assert status == 200
    await sign_in(pclient, live.people.staff)
    school = live.people.school
    for windows in (
        [{"weekday": 0, "start": "17:00", "end": "07:00"}],
        [{"weekday": 0, "start": "25:00", "end": "26:00"}],
        [{"weekday": 0, "start": "7:5", "end": "08:00"}],
        [{"weekday": 7, "start": "07:00", "end": "08:00"}],
        [{"weekday": 0, "start": "07:00"}],
        "07:00-17:00",
    ):
        status, answer = await call(pclient, "PUT", f"/api/units/{school}/live/windows", {"windows": windows})
        assert status == 422 and "windows" in answer["error"], (windows, answer)
    status, answer = await call(pclient, "PUT", f"/api/units/{school}/live/consent-policy", {"consent_policy": "some"})
    assert status == 422
    cam = f"/api/cameras/{live.cameras[5]}/live"
    for body, status_wanted in (
        ({"class_id": live.people.klass, "staff_only": True}, 400),
        ({"class_id": live.people.other_school_class}, 400),
        ({"class_id": 999_999}, 400),
        ({"klass": 1}, 422),
    ):
        status, answer = await call(pclient, "PUT", cam, body)
        assert status == status_wanted, (body, answer)
    status, _ = await call(pclient, "PUT", f"/api/cameras/{live.cameras[6]}/live", {"class_id": None})
    assert status == 403  # another school's camera
    status, settings = await call(pclient, "GET", f"/api/units/{school}/live")
    assert (
        status == 200 and settings["time_zone"] == "Asia/Ho_Chi_Minh" and settings["consent_policy"] == "all_children"
    )
    assert len(settings["windows"]) == 5 and settings["windows"][0] == {"weekday": 0, "start": "07:00", "end": "17:00"}
    by_id = {c["id"]: c for c in settings["cameras"]}
    assert by_id[live.cameras[4]]["staff_only"] is True and by_id[live.cameras[1]]["class_id"] == live.people.klass
    assert live.cameras[6] not in by_id
    status, log = await call(pclient, "GET", f"/api/units/{school}/live/sessions")
    assert status == 200
    (line,) = log["views"]
    assert line["id"] == started["session"] and line["parent"] == "parent" and line["child"] == "Nguyễn Văn An"
    assert line["device"] == DEVICE_A and line["address"] == "127.0.0.1" and line["ended_at"] is None
    assert "token" not in str(log)
    await sign_in(pclient, live.people.teacher)
    assert (await pclient.get(f"/api/units/{school}/live/sessions")).status == 403
    await sign_in(pclient, live.people.other_technician)
    assert (await pclient.get(f"/api/units/{school}/live/sessions")).status == 403
    status, other_log = await call(pclient, "GET", f"/api/units/{live.people.other_school}/live/sessions")
    assert status == 200 and other_log["views"] == []


async def test_a_camera_nobody_watches_stops_publishing(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock
) -> None:
    status, started = await _watch(pclient, live.cameras[1])
    assert status == 200
    publish = await receive(live.agent_ws)
    assert isinstance(publish, PublishCamera)
    await send(
        live.agent_ws,
        PublishState(request_id=publish.request_id, endpoint_ref=publish.endpoint_ref, state="publishing"),
    )
    status, _ = await call(pclient, "POST", "/api/live/end", {"session": started["session"]})
    assert status == 200
    status, _ = await call(pclient, "POST", "/api/live/end", {"session": started["session"]})
    assert status == 404
    assert papp[MEDIA_NODES].registry.placements() == {camera_room(live.cameras[1]): "node-1"}
    await settle(papp)  # the watcher has seen the camera without viewers
    for _ in range(11):  # 55 s without a viewer: still published
        await clock.advance(5)
        await live.node.send_report(pclient)
    await settle(papp)
    assert papp[LIVE].publication(live.cameras[1]) is not None
    await clock.advance(5)
    await live.node.send_report(pclient)
    stop = await receive(live.agent_ws)
    assert isinstance(stop, StopPublishing) and stop.endpoint_ref == live.refs[1]
    assert papp[LIVE].publication(live.cameras[1]) is None and papp[MEDIA_NODES].registry.placements() == {}
