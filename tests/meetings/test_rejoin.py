"""Rejoining as the same participant (`Hello.resume`): the room's rules, and the node over real WebSockets."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from media.rooms.room import MeetingRoom, Refused
from protocol.media import MeetingRole
from protocol.meeting import RESUME_S, CloseReason, Codec, HostAction, HostCommand
from tests.meetings.nodes import Node, meeting_node
from tests.waiting import eventually

ROOM = "meet-9-90"


def test_a_dropped_member_comes_back_as_itself_within_the_resume_time_only() -> None:
    r = MeetingRoom(ROOM, class_mode=True, codec=Codec.VP8)
    host = r.admit("join:h", "Host", MeetingRole.HOST)
    student = r.admit("join:s", "5A", MeetingRole.PARTICIPANT)
    r.act(host, HostCommand(action=HostAction.PROMOTE, target=student.id))
    r.act(host, HostCommand(action=HostAction.MUTE, target=student.id))
    r.hand(student, True)
    r.leave(student.id, resumable=True, now=10.0)
    assert [p.id for p in r.roster_for(host).participants] == [host.id]  # no ghost while it is away
    r.act(host, HostCommand(action=HostAction.LOCK))
    with pytest.raises(Refused):  # locked: a newcomer with the same link is not let in ...
        r.admit("join:s", "5A", MeetingRole.PARTICIPANT, now=11.0)
    back = r.admit("join:s", "5A", MeetingRole.PARTICIPANT, resume=student.resume, now=11.0)  # ... the member is
    assert back is student and back.role is MeetingRole.PRESENTER and back.muted_by_host and back.hand
    assert [p.id for p in r.roster_for(host).participants] == [host.id, student.id]
    # Once only, with the same link, and not after RESUME_S.
    r.act(host, HostCommand(action=HostAction.UNLOCK))
    r.leave(student.id, resumable=True, now=20.0)
    other = r.admit("join:x", "X", MeetingRole.PARTICIPANT, resume=student.resume, now=21.0)
    assert other.id != student.id
    late = r.admit("join:s", "5A", MeetingRole.PARTICIPANT, resume=student.resume, now=20.0 + RESUME_S)
    assert late.id != student.id and late.role is MeetingRole.STUDENT
    # A member who left on purpose is not kept.
    r.leave(late.id, now=30.0)
    assert not r.is_away(late.resume)


def test_a_removed_member_cannot_resume() -> None:
    r = MeetingRoom(ROOM, class_mode=False, codec=Codec.VP8)
    host = r.admit("join:h", "Host", MeetingRole.HOST)
    guest = r.admit("join:g", "Guest", MeetingRole.PARTICIPANT)
    r.leave(guest.id, resumable=True, now=1.0)
    r.admit("join:g", "Guest", MeetingRole.PARTICIPANT, resume=guest.resume, now=2.0)
    r.act(host, HostCommand(action=HostAction.REMOVE, target=guest.id))
    r.leave(guest.id, resumable=True, now=3.0)
    with pytest.raises(Refused) as refused:
        r.admit("join:g", "Guest", MeetingRole.PARTICIPANT, resume=guest.resume, now=4.0)
    assert refused.value.reason == CloseReason.REMOVED


async def _hello(
    http: aiohttp.ClientSession,
    node: Node,
    name: str,
    resume: str | None = None,
    role: MeetingRole = MeetingRole.PARTICIPANT,
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, object]]:
    ws = await http.ws_connect(node.ws_url(ROOM))
    hello: dict[str, object] = {"type": "hello", "token": node.token(ROOM, role, name=name)}
    if resume is not None:
        hello["resume"] = resume
    await ws.send_str(json.dumps(hello))
    welcome = json.loads((await ws.receive(timeout=10)).data)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def test_the_node_replaces_a_connection_that_still_looks_open_and_resumes_a_dropped_one() -> None:
    async with meeting_node() as node, aiohttp.ClientSession() as http:
        host_ws, host = await _hello(http, node, "host")
        old_ws, first = await _hello(http, node, "guest")
        assert first["resumed"] is False
        # A rejoin while the old socket is still open: the old one is told `replaced` and closed, and the rejoin
        # is the same participant; the room has two connections, not three.
        new_ws, again = await _hello(http, node, "guest", resume=str(first["resume"]))
        assert again["participant"] == first["participant"] and again["resumed"] is True
        closed = []
        async with asyncio.timeout(10):
            async for frame in old_ws:
                message = json.loads(frame.data)
                if message["type"] == "closed":
                    closed.append(message["reason"])
        assert closed == [CloseReason.REPLACED]
        live = node.meetings.rooms[ROOM]
        assert sorted(live.connections) == sorted([str(host["participant"]), str(first["participant"])])
        # Its socket drops (no leave): out of the roster at once, and back as itself with its key.
        await new_ws.close()
        await eventually(lambda: sorted(live.room.members) == [host["participant"]])
        back_ws, back = await _hello(http, node, "guest", resume=str(first["resume"]))
        assert back["participant"] == first["participant"] and back["resumed"] is True
        # A key that is not this link's, or made up, gives a new participant.
        _, stranger = await _hello(http, node, "stranger", resume=str(first["resume"]))
        assert stranger["participant"] != first["participant"] and stranger["resumed"] is False
        await back_ws.close()
        await host_ws.close()


async def test_a_meeting_ended_for_everyone_stays_ended_at_the_node() -> None:
    async with meeting_node() as node, aiohttp.ClientSession() as http:
        host_ws, _ = await _hello(http, node, "host", role=MeetingRole.HOST)
        guest_ws, _ = await _hello(http, node, "guest")
        await host_ws.send_str(json.dumps({"type": "host_action", "action": "end"}))
        for ws in (host_ws, guest_ws):
            async with asyncio.timeout(10):
                reasons = [json.loads(frame.data).get("reason") async for frame in ws]
            assert reasons[-1] == CloseReason.ENDED
        await eventually(lambda: ROOM not in node.meetings.rooms)
        # Anyone coming back with a fresh token (a page's rejoin, the link opened again) is told it ended, and the
        # room is not opened again.
        async with http.ws_connect(node.ws_url(ROOM)) as ws:
            await ws.send_str(json.dumps({"type": "hello", "token": node.token(ROOM, name="guest")}))
            answer = json.loads((await ws.receive(timeout=10)).data)
            assert (answer["type"], answer["reason"]) == ("closed", CloseReason.ENDED)
        assert ROOM not in node.meetings.rooms
