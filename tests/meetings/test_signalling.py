"""The meeting WebSocket on a real node: token checks, limits on every message, roles and host actions with real
aiortc participants (observer, mute, removal, class mode, video from the most recent speakers)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp

from common.clock import ManualClock
from media.rooms.botpeer import BotPeer
from media.rooms.extension import MeetingSettings
from protocol.media import CONTROL_CLOSE_PATH, CloseRequest, MediaTokens, MeetingRole, TokenKind, node_bearer
from protocol.meeting import CloseReason, HostAction, HostCommand, PublishOffer, Source, TrackInfo
from tests.meetings.nodes import SECRET, Node, meeting_node
from tests.waiting import eventually

ROOM = "meet-7-70"


async def _first_answer(node: Node, room: str, hello: str) -> tuple[dict[str, object], int | None]:
    """Send one frame as the first frame; the node's answer and the close code."""
    async with aiohttp.ClientSession() as http, http.ws_connect(node.ws_url(room)) as ws:
        await ws.send_str(hello)
        frame = await ws.receive(timeout=10)
        answer = json.loads(frame.data)
        await ws.receive(timeout=10)
        return answer, ws.close_code


async def test_tokens_for_another_room_node_or_purpose_and_expired_or_tampered_ones_are_refused() -> None:
    async with meeting_node() as node:
        past = MediaTokens(SECRET, ManualClock(datetime.now(UTC) - timedelta(minutes=5)))
        good = node.token(ROOM)
        tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
        cases = {
            "wrong_room": node.token("meet-7-71"),
            "wrong_node": node.token(ROOM, node="media-other"),
            "wrong_kind": node.token(ROOM, kind=TokenKind.VIEW),
            "expired": node.token(ROOM, tokens=past),
            "tampered": tampered,
        }
        for reason, token in cases.items():
            answer, code = await _first_answer(node, ROOM, json.dumps({"type": "hello", "token": token}))
            assert answer["type"] == "closed" and answer["reason"] == CloseReason.TOKEN, reason
            assert str(answer["message"]).startswith(reason) and code == 4403, (reason, answer)
            assert node.node.metrics.refusal_count("meeting", reason) == 1
        answer, code = await _first_answer(node, ROOM, json.dumps({"type": "hand", "raised": True}))
        assert answer["reason"] == CloseReason.PROTOCOL and code == 4403
        assert ROOM not in node.meetings.rooms  # nobody got in, so no room was opened
        answer, _ = await _first_answer(node, ROOM, json.dumps({"type": "hello", "token": good}))
        assert answer["type"] == "welcome"


@contextlib.asynccontextmanager
async def joined(node: Node, *peers: BotPeer) -> AsyncIterator[None]:
    try:
        for peer in peers:
            await peer.join()
        yield
    finally:
        for peer in peers:
            await peer.close()


async def test_limits_on_every_message_do_not_disturb_the_others() -> None:
    async with meeting_node() as node:
        calm = BotPeer(node.ws_url(ROOM), node.token(ROOM, name="calm"), audio=False, video=False)
        async with joined(node, calm), aiohttp.ClientSession() as http:
            async with http.ws_connect(node.ws_url(ROOM)) as ws:
                await ws.send_str(json.dumps({"type": "hello", "token": node.token(ROOM, name="noisy")}))
                assert json.loads((await ws.receive(timeout=10)).data)["type"] == "welcome"
                await ws.send_str(json.dumps({"type": "hand"}))
                await ws.send_str(json.dumps({"type": "host_action", "action": "end"}))
                await ws.send_str(json.dumps({"type": "hand", "raised": True, "extra": 1}))
                await ws.send_str(json.dumps({"type": "publish_offer", "sdp": "x" * 70_000, "tracks": []}))
                codes = []
                async for frame in ws:
                    data = json.loads(frame.data)
                    if data["type"] == "error":
                        codes.append((data["code"], data["message"]))
                    if len(codes) == 4:
                        break
                assert [c for c, _ in codes] == ["bad_message", "not_host", "bad_message", "bad_message"]
                assert "raised" in codes[0][1] and "sdp" in codes[3][1]
                for _ in range(120):  # a flood: refused past the burst, then the connection is closed
                    await ws.send_str(json.dumps({"type": "hand", "raised": True}))
                seen = []
                async for frame in ws:
                    data = json.loads(frame.data)
                    seen.append(data.get("code") or data["type"])
                assert "rate_limited" in seen and seen[-1] == "closed"
            async with http.ws_connect(node.ws_url(ROOM)) as ws:  # an SDP aiortc cannot apply: refused, still in
                await ws.send_str(json.dumps({"type": "hello", "token": node.token(ROOM, name="bad sdp")}))
                assert json.loads((await ws.receive(timeout=10)).data)["type"] == "welcome"
                for sdp in (
                    "v=0\r\nm=video x\r\n",
                    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 X 0\r\n",
                ):
                    await ws.send_str(json.dumps({"type": "publish_offer", "sdp": sdp, "tracks": []}))
                    async for frame in ws:
                        data = json.loads(frame.data)
                        if data["type"] == "error":
                            assert data["code"] == "bad_sdp", data
                            break
                await ws.send_str(json.dumps({"type": "hand", "raised": True}))
                async for frame in ws:
                    if json.loads(frame.data)["type"] == "roster":
                        break
            async with http.ws_connect(node.ws_url(ROOM), max_msg_size=1 << 22) as big:
                await big.send_str(json.dumps({"type": "hello", "token": node.token(ROOM, name="big")}))
                assert json.loads((await big.receive(timeout=10)).data)["type"] == "welcome"
                await big.send_str("x" * 200_000)
                async for _frame in big:
                    pass
                assert big.close_code == 1009  # aiohttp refuses frames over MAX_FRAME_BYTES
            assert calm.closed is None and not calm.errors
            await eventually(lambda: calm.roster is not None and len(calm.roster.participants) == 1)


async def test_observer_receives_and_sends_nothing_and_is_hidden_from_the_class() -> None:
    async with meeting_node() as node:
        host = BotPeer(node.ws_url(ROOM), node.token(ROOM, MeetingRole.HOST, name="host", class_mode=True))
        student = BotPeer(node.ws_url(ROOM), node.token(ROOM, name="student", class_mode=True))
        observer = BotPeer(node.ws_url(ROOM), node.token(ROOM, MeetingRole.OBSERVER, name="obs", class_mode=True))
        async with joined(node, host, student, observer):
            assert observer.welcome is not None and not observer.welcome.may_publish
            await eventually(lambda: observer.frames_from(host.id, Source.CAMERA) > 10, timeout=20)
            await eventually(lambda: observer.frames_from(host.id, Source.MICROPHONE) > 20, timeout=20)
            await observer.send(
                PublishOffer(sdp="v=0\r\n" + "a=x\r\n", tracks=[TrackInfo(mid="0", source=Source.CAMERA)])
            )
            await eventually(lambda: "not_allowed" in observer.errors)
            live = node.meetings.rooms[ROOM]
            assert not any(pid == observer.id for pid, _ in live.live_feeds)
            assert observer._publish is None  # it never opened a publish connection
            await eventually(
                lambda: student.roster is not None and host.roster is not None and len(host.roster.participants) == 3
            )
            assert observer.id not in [p.id for p in student.roster.participants]  # type: ignore[union-attr]
            assert observer.id in [p.id for p in host.roster.participants]  # type: ignore[union-attr]
            assert all(pid != observer.id for pid, _ in host.slots.values())


async def test_a_muted_participants_audio_stops_reaching_the_others_and_a_removed_one_is_out() -> None:
    async with meeting_node() as node:
        host = BotPeer(node.ws_url(ROOM), node.token(ROOM, MeetingRole.HOST, name="host", subject="join:h"))
        loud = BotPeer(node.ws_url(ROOM), node.token(ROOM, name="loud", subject="join:l"))
        other = BotPeer(node.ws_url(ROOM), node.token(ROOM, name="other", subject="join:o"))
        async with joined(node, host, loud, other):
            await eventually(lambda: other.frames_from(loud.id, Source.MICROPHONE) > 20, timeout=20)
            mid = next(m for m, (pid, src) in other.slots.items() if pid == loud.id and src is Source.MICROPHONE)
            await host.send(HostCommand(action=HostAction.MUTE, target=loud.id))
            await eventually(lambda: loud.muted is True)
            await eventually(lambda: other.slots.get(mid) == (None, None))
            # What was in flight drains while a second of the host's audio arrives; then, over another second of
            # the host's audio, not one more packet of the muted participant's.
            host_audio = other.frames_from(host.id, Source.MICROPHONE)
            await eventually(lambda: other.frames_from(host.id, Source.MICROPHONE) > host_audio + 50, timeout=10)
            stopped = other.received[mid].frames
            host_audio = other.frames_from(host.id, Source.MICROPHONE)
            await eventually(lambda: other.frames_from(host.id, Source.MICROPHONE) > host_audio + 50, timeout=10)
            assert other.received[mid].frames == stopped
            await host.send(HostCommand(action=HostAction.ALLOW_SPEAK, target=loud.id))
            await eventually(lambda: other.frames_from(loud.id, Source.MICROPHONE) > 0, timeout=10)

            await host.send(HostCommand(action=HostAction.REMOVE, target=loud.id))
            await eventually(lambda: loud.closed is not None)
            assert loud.closed is not None and loud.closed.reason is CloseReason.REMOVED
            await eventually(
                lambda: other.roster is not None and loud.id not in [p.id for p in other.roster.participants]
            )
            await eventually(lambda: all(pid != loud.id for pid, _ in other.slots.values()))
            again = BotPeer(node.ws_url(ROOM), node.token(ROOM, name="loud", subject="join:l"))
            async with joined(node, again):
                assert again.closed is not None and again.closed.reason is CloseReason.REMOVED


async def test_class_students_join_muted_and_subscribers_get_video_from_the_most_recent_speaker() -> None:
    async with meeting_node(MeetingSettings(max_video=1)) as node:
        token = node.token
        teacher = BotPeer(node.ws_url(ROOM), token(ROOM, MeetingRole.HOST, name="t", class_mode=True), tone=False)
        student = BotPeer(node.ws_url(ROOM), token(ROOM, name="s", class_mode=True))
        viewer = BotPeer(node.ws_url(ROOM), token(ROOM, name="v", class_mode=True), tone=False)
        async with joined(node, teacher, student, viewer):
            assert student.welcome is not None and student.welcome.muted_by_host
            assert student.welcome.role is MeetingRole.STUDENT
            await eventually(lambda: viewer.frames_from(teacher.id, Source.CAMERA) > 5, timeout=20)
            assert viewer.frames_from(student.id, Source.MICROPHONE) == 0  # a student's audio is held
            await student.send_json(json.dumps({"type": "hand", "raised": True}))
            await eventually(lambda: teacher.roster is not None and any(p.hand for p in teacher.roster.participants))
            await teacher.send(HostCommand(action=HostAction.ALLOW_SPEAK, target=student.id))
            await eventually(lambda: viewer.frames_from(student.id, Source.MICROPHONE) > 10, timeout=10)
            # The student now speaks (a tone), the teacher is silent: the viewer's one video slot turns to the student.
            await eventually(lambda: student.id in viewer.speakers, timeout=10)
            await eventually(lambda: viewer.frames_from(student.id, Source.CAMERA) > 5, timeout=10)
            assert len([s for _, s in viewer.slots.values() if s is Source.CAMERA]) == 1


def _reason(peer: BotPeer) -> CloseReason | None:
    return peer.closed.reason if peer.closed is not None else None


async def test_the_controller_closes_a_participant_or_the_whole_room() -> None:
    async with meeting_node() as node:
        a = BotPeer(node.ws_url(ROOM), node.token(ROOM, name="a", subject="join:a"), audio=False, video=False)
        b = BotPeer(node.ws_url(ROOM), node.token(ROOM, name="b", subject="join:b"), audio=False, video=False)
        headers = {"Authorization": f"Bearer {node_bearer(SECRET)}"}
        async with joined(node, a, b), aiohttp.ClientSession() as http:
            close = CloseRequest(participants=[(ROOM, "join:a")], reason="the link was withdrawn")
            async with http.post(f"{node.url}{CONTROL_CLOSE_PATH}", data=close.model_dump_json(), headers=headers) as r:
                assert r.status == 200 and (await r.json())["closed"] == 1
            await eventually(lambda: a.closed is not None)
            assert a.closed is not None and a.closed.reason is CloseReason.REMOVED
            assert a.closed.message == "the link was withdrawn" and _reason(b) is None
            close = CloseRequest(rooms=[ROOM])
            async with http.post(f"{node.url}{CONTROL_CLOSE_PATH}", data=close.model_dump_json(), headers=headers) as r:
                assert r.status == 200 and (await r.json())["closed"] == 1
            await eventually(lambda: b.closed is not None)
            assert _reason(b) is CloseReason.ENDED and ROOM not in node.meetings.rooms
            async with http.ws_connect(node.ws_url(ROOM)) as ws:  # and it stays closed
                await ws.send_str(json.dumps({"type": "hello", "token": node.token(ROOM, name="c")}))
                assert json.loads((await ws.receive(timeout=10)).data)["reason"] == CloseReason.ENDED
            async with http.post(f"{node.url}{CONTROL_CLOSE_PATH}", data=close.model_dump_json()) as r:
                assert r.status == 401  # only the controller


async def test_joins_from_one_address_are_rate_limited() -> None:
    async with meeting_node(per_minute=3) as node, aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.ws_connect(node.ws_url(ROOM)) as ws:
                await ws.send_str(json.dumps({"type": "hello", "token": node.token(ROOM)}))
                assert json.loads((await ws.receive(timeout=10)).data)["type"] == "welcome"
        async with http.get(node.ws_url(ROOM).replace("ws://", "http://")) as response:
            assert response.status == 429 and (await response.json())["reason"] == "rate_limited"
        assert node.node.metrics.refusal_count("meeting", "rate_limited") == 1
