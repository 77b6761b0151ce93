"""Every refusal, tried by several identifiers (camera id, relay name, endpoint reference, another class's
camera, another school's, a staff-only camera, outside the window, on a holiday, without consent, a third
device, after the guardianship is revoked): refused with its reason AND audited, one entry per attempt."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from common.clock import ManualClock
from controller import state
from tests.controller.conftest import Client, sign_in
from tests.controller.live.conftest import DEVICE_A, DEVICE_B, DEVICE_C, Live, audits, call
from tests.waiting import eventually


def _identifiers(live: Live, n: int) -> list[Any]:
    """The ways a page or a script can name camera n."""
    return [live.cameras[n], str(live.cameras[n]), f"cam-{live.cameras[n]}", live.refs[n]]


async def _refused(
    client: Client, app: web.Application, camera: Any, reason: str, device: str = DEVICE_A, **extra: Any
) -> dict[str, Any]:
    before = len(await audits(app, "live.refuse"))
    status, answer = await call(client, "POST", "/api/live/watch", {"camera": camera, "device": device, **extra})
    wanted = {"camera_unavailable": 409, "no_media_node": 409, "bad_device": 422}.get(reason, 403)
    assert status == wanted, (camera, answer)
    assert answer["reason"] == reason, (camera, answer)
    assert "token" not in answer and "whep_url" not in answer
    entries = await audits(app, "live.refuse")
    assert len(entries) == before + 1, camera
    entry = entries[-1]
    assert entry.actor == "user:parent" and entry.details["reason"] == reason and entry.address == "127.0.0.1"
    assert entry.details["asked"] == str(camera)[:80] and entry.details["device"] == device[:80]
    assert isinstance(answer, dict)
    return answer


async def test_cameras_the_parent_is_not_entitled_to_are_refused_by_any_name(
    pclient: Client, papp: web.Application, live: Live
) -> None:
    for n, reason in ((3, "not_your_class"), (4, "staff_only"), (5, "not_a_class_camera"), (6, "not_your_class")):
        for identifier in _identifiers(live, n):
            await _refused(pclient, papp, identifier, reason)
    for identifier in (999_999, "999999", "cam-999999", "cam-", "urn:uuid:nope", "../../etc/passwd", "cam-1; drop"):
        await _refused(pclient, papp, identifier, "unknown_camera")
    # Their own class's camera, but naming another family's child or a child of another school.
    for child in (live.people.other_child, 2**31 - 1):
        await _refused(pclient, papp, live.cameras[1], "not_your_class", child_id=child)
    # The staff-only camera is not even listed.
    status, overview = await call(pclient, "GET", "/api/live/cameras")
    assert status == 200
    listed = {c["id"] for child in overview["children"] for c in child["cameras"]}
    assert listed == {live.cameras[1], live.cameras[2]}
    metrics = await (await pclient.get("/metrics")).text()
    assert 'ketnoi_live_refusals_total{reason="staff_only"} 4.0' in metrics
    assert 'ketnoi_live_refusals_total{reason="unknown_camera"} 7.0' in metrics
    assert "ketnoi_live_views_started_total 0.0" in metrics and "Nhà vệ sinh" not in metrics
    # Other roles have no live view at all.
    await sign_in(pclient, live.people.teacher)
    status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": DEVICE_A})
    assert status == 403


async def test_outside_the_window_and_on_holidays(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock
) -> None:
    await clock.advance(5 * 86400)  # Saturday 08:00 local (sessions time out: sign in again)
    await sign_in(pclient, live.people.parent)
    for identifier in _identifiers(live, 1):
        answer = await _refused(pclient, papp, identifier, "outside_window")
        assert answer["next_open"] == "2026-01-12T07:00:00+07:00"
    status, overview = await call(pclient, "GET", "/api/live/cameras")
    (child,) = overview["children"]
    assert {(c["available"], c["reason"], c["next_open"]) for c in child["cameras"]} == {
        (False, "outside_window", "2026-01-12T07:00:00+07:00")
    }
    await clock.advance(2 * 86400 - 3600 - 60)  # Monday 06:59 local
    await sign_in(pclient, live.people.parent)
    await _refused(pclient, papp, live.cameras[2], "outside_window")
    await sign_in(pclient, live.people.staff)
    status, answer = await call(
        pclient,
        "PUT",
        f"/api/units/{live.people.school}/live/holidays",
        {"holidays": [{"day": "2026-01-12", "name": "Tết"}]},
    )
    assert status == 200 and answer["next_opening"] == "2026-01-13T07:00:00+07:00", answer
    await clock.advance(120)  # 07:01, but a holiday
    await sign_in(pclient, live.people.parent)
    for identifier in _identifiers(live, 2):
        answer = await _refused(pclient, papp, identifier, "outside_window")
        assert answer["next_open"] == "2026-01-13T07:00:00+07:00"


async def test_consent_policy(pclient: Client, papp: web.Application, live: Live) -> None:
    await sign_in(pclient, live.people.staff)
    status, child = await call(pclient, "GET", f"/api/children/{live.people.sibling}")
    (consent,) = child["consents"]
    status, _ = await call(pclient, "POST", f"/api/children/{live.people.sibling}/consents/{consent['id']}/withdraw")
    assert status == 200
    await sign_in(pclient, live.people.parent)
    for identifier in _identifiers(live, 1):  # a classmate without consent closes the class's cameras
        await _refused(pclient, papp, identifier, "consent_missing")
    await sign_in(pclient, live.people.staff)
    status, answer = await call(
        pclient, "PUT", f"/api/units/{live.people.school}/live/consent-policy", {"consent_policy": "own_child"}
    )
    assert status == 200 and answer["consent_policy"] == "own_child"
    await sign_in(pclient, live.people.parent)
    status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": DEVICE_A})
    assert status == 200
    kinds = [a.details["consent_policy"] for a in await audits(papp, "live.consent_policy")]
    assert kinds == ["own_child"]


async def test_a_third_device_is_refused(pclient: Client, papp: web.Application, live: Live) -> None:
    for device in (DEVICE_A, DEVICE_B):
        status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": device})
        assert status == 200
    for identifier in _identifiers(live, 1) + _identifiers(live, 2):
        await _refused(pclient, papp, identifier, "device_limit", device=DEVICE_C)
    for device in ("short", "has space in it", "x" * 65, "../../x.y.z"):
        await _refused(pclient, papp, live.cameras[1], "bad_device", device=device)
    status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": ""})
    assert status == 422
    # A device already watching may switch cameras.
    status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[2], "device": DEVICE_B})
    assert status == 200
    # Ending a view frees its device.
    status, history = await call(pclient, "GET", "/api/live/history")
    mine = [v for v in history["views"] if v["device"] == DEVICE_A and v["ended_at"] is None]
    status, _ = await call(pclient, "POST", "/api/live/end", {"session": mine[0]["id"]})
    assert status == 200
    status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": DEVICE_C})
    assert status == 200


async def test_after_the_guardianship_is_revoked(pclient: Client, papp: web.Application, live: Live) -> None:
    await sign_in(pclient, live.people.staff)
    status, _ = await call(
        pclient, "POST", f"/api/children/{live.people.child}/guardians/{live.people.parent_id}/revoke"
    )
    assert status == 200
    await sign_in(pclient, live.people.parent)
    for n in (1, 2):
        for identifier in _identifiers(live, n):
            await _refused(pclient, papp, identifier, "not_your_class")
    status, overview = await call(pclient, "GET", "/api/live/cameras")
    assert status == 200 and overview["children"] == []


async def test_no_media_node_or_agent_offline(
    pclient: Client, papp: web.Application, live: Live, clock: ManualClock
) -> None:
    await clock.advance(7)  # the node's reports are three intervals late
    for identifier in _identifiers(live, 1):
        await _refused(pclient, papp, identifier, "no_media_node")
    await live.node.send_report(pclient)
    await live.agent_ws.close()
    await eventually(lambda: papp[state.HUB].get(1) is None and len(papp[state.HUB]) == 1)
    for identifier in _identifiers(live, 2):
        await _refused(pclient, papp, identifier, "camera_unavailable")


async def test_three_devices_asking_at_once_get_two_views(pclient: Client, papp: web.Application, live: Live) -> None:
    async def ask(device: str) -> int:
        status, _ = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": device})
        return status

    statuses = await asyncio.gather(*(ask(d) for d in (DEVICE_A, DEVICE_B, DEVICE_C)))
    assert sorted(statuses) == [200, 200, 403]
    (refusal,) = await audits(papp, "live.refuse")
    assert refusal.details["reason"] == "device_limit"


async def test_a_parent_of_two_children_in_two_schools(pclient: Client, papp: web.Application, live: Live) -> None:
    await sign_in(pclient, live.people.other_technician)
    status, _ = await call(
        pclient,
        "POST",
        f"/api/children/{live.people.other_child}/guardians",
        {"user_id": live.people.parent_id, "relationship": "father"},
    )
    assert status in (200, 201)
    status, _ = await call(pclient, "POST", f"/api/children/{live.people.other_child}/consents", {"given_by": "Bố"})
    assert status in (200, 201)
    await sign_in(pclient, live.people.parent)
    _, overview = await call(pclient, "GET", "/api/live/cameras")
    shown = {c["child"]["id"]: [cam["id"] for cam in c["cameras"]] for c in overview["children"]}
    assert shown == {
        live.people.child: [live.cameras[2], live.cameras[1]],
        live.people.other_child: [live.cameras[6]],
    }
    # Each camera is watched for the child in its class: naming the other child is refused.
    await _refused(pclient, papp, live.cameras[6], "not_your_class", child_id=live.people.child)
    await _refused(pclient, papp, live.cameras[1], "not_your_class", child_id=live.people.other_child)
    status, started = await call(
        pclient,
        "POST",
        "/api/live/watch",
        {"camera": live.cameras[6], "device": DEVICE_A, "child_id": live.people.other_child},
    )
    assert status == 200 and started["child_id"] == live.people.other_child
    status, started = await call(pclient, "POST", "/api/live/watch", {"camera": live.cameras[1], "device": DEVICE_B})
    assert status == 200 and started["child_id"] == live.people.child
