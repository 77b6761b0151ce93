"""`POST /control/close`: the controller ends view sessions (a revoked grant, the end of a window) or whole relays
within 5 s; only with the node credential; bad requests get a clear 4xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocol.media import CONTROL_CLOSE_PATH, TokenKind, node_bearer
from tests.media.node.helpers import DecodingViewer, LoopPublisher, RunningNode, h264_loop, running_node
from tests.waiting import eventually

ROOM = "cam-2"


async def close(node: RunningNode, body: Any, *, bearer: str | None = None) -> tuple[int, Any]:
    auth = bearer if bearer is not None else node_bearer(node.secret)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}{CONTROL_CLOSE_PATH}", json=body, headers={"Authorization": f"Bearer {auth}"}) as r,
    ):
        return r.status, await r.json()


async def test_closing_a_view_session_ends_that_viewer_within_5_s_and_no_other(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        publisher = LoopPublisher(await h264_loop())
        revoked, other = DecodingViewer(), DecodingViewer()
        try:
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            assert (await revoked.view(node, ROOM, node.view_token(ROOM, session="live-1")))[0] == 201
            assert (await other.view(node, ROOM, node.view_token(ROOM, session="live-2")))[0] == 201
            await eventually(lambda: revoked.decoded > 5 and other.decoded > 5, timeout=15)
            status, answer = await close(node, {"view_sessions": ["live-1", "live-unknown"], "reason": "revoked"})
            assert (status, answer) == (200, {"closed": 1})
            await eventually(revoked.ended.is_set, timeout=5)
            assert node.live.load().view_sessions == ["live-2"]
            still = other.decoded
            await eventually(lambda: other.decoded > still + 10, timeout=10)
            assert not other.ended.is_set()
        finally:
            for peer in (revoked, other):
                await peer.close()
            await publisher.close()


async def test_closing_a_room_ends_its_viewers_and_its_publication(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        publisher = LoopPublisher(await h264_loop())
        viewer = DecodingViewer()
        try:
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            assert (await viewer.view(node, ROOM, node.view_token(ROOM)))[0] == 201
            await eventually(lambda: viewer.decoded > 3, timeout=15)
            assert await close(node, {"rooms": [ROOM]}) == (200, {"closed": 1})
            await eventually(viewer.ended.is_set, timeout=5)
            await eventually(lambda: publisher.pc.connectionState == "closed", timeout=5)
            assert node.live.load().relays == 0
        finally:
            await viewer.close()
            await publisher.close()


@pytest.mark.parametrize("bearer", ["", "wrong", node_bearer(b"another secret of enough length")])
async def test_control_needs_the_node_credential(tmp_path: Path, bearer: str) -> None:
    async with running_node(tmp_path) as node:
        status, body = await close(node, {"view_sessions": ["x"]}, bearer=bearer)
        assert status == 401
        assert "credential" in body["error"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"view_sessions": "live-1"}, "view_sessions"),
        ({"rooms": [1, 2]}, "rooms"),
        ({"unknown": True}, "unknown"),
        ({"participants": [["meet-1-1"]]}, "participants"),
        ([], "body"),
    ],
)
async def test_a_malformed_close_request_is_a_400_that_says_what_is_wrong(
    tmp_path: Path, body: Any, where: str
) -> None:
    async with running_node(tmp_path) as node:
        status, answer = await close(node, body)
        assert status == 400
        assert where in answer["error"] or "bad close request" in answer["error"]


async def test_many_view_sessions_close_together_within_5_s(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        publisher = LoopPublisher(await h264_loop())
        viewers = [DecodingViewer() for _ in range(12)]
        try:
            assert await publisher.publish(node, ROOM, node.token(TokenKind.PUBLISH, ROOM)) == 201
            for index, viewer in enumerate(viewers):
                assert (await viewer.view(node, ROOM, node.view_token(ROOM, session=f"live-{index}")))[0] == 201
            await eventually(lambda: all(v.decoded > 0 for v in viewers), timeout=20)
            sessions = [f"live-{index}" for index in range(10)]
            assert await close(node, {"view_sessions": sessions, "reason": "window ended"}) == (200, {"closed": 10})
            await eventually(lambda: all(v.ended.is_set() for v in viewers[:10]), timeout=5)
            assert sorted(node.live.load().view_sessions) == ["live-10", "live-11"]
        finally:
            for viewer in viewers:
                await viewer.close()
            await publisher.close()
