"""The media-node registry: reports need the node bearer, placement picks the least loaded fresh node and keeps
a room on its node, stale nodes get nothing new, ICE servers carry TURN REST credentials, the control client
reaches a node's control endpoint with the bearer."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from common.clock import ManualClock
from common.config import ConfigError
from controller.medianodes import MEDIA_NODES, MediaNodes, NodeRegistry, NoMediaNode
from controller.medianodes.control import ControlError, NodeControl
from controller.medianodes.ice import IceServers
from protocol.media import NODE_REPORT_PATH, CloseRequest, NodeLoad, NodeReport, node_bearer
from tests.controller.conftest import Client, make_config
from tests.controller.live.fakes import FakeNode


def _report(node_id: str, streams_out: int, capacity: int = 100) -> NodeReport:
    return NodeReport(
        node_id=node_id,
        public_url=f"http://{node_id}.test",
        control_url=f"http://{node_id}.test",
        version="1",
        capacity_streams=capacity,
        load=NodeLoad(rooms=0, relays=0, publishers=0, subscribers=0, streams_out=streams_out, cpu=0.1),
    )


async def test_placement_picks_the_least_loaded_fresh_node_and_keeps_a_room_on_it(clock: ManualClock) -> None:
    registry = NodeRegistry(clock, interval_s=2.0)
    with pytest.raises(NoMediaNode):
        registry.place("cam-1")
    registry.report(_report("a", 50))
    registry.report(_report("b", 10))
    registry.report(_report("c", 5, capacity=10))  # 50% used: busier than b
    assert registry.place("cam-1").node_id == "b"
    # Reservations count until the next report: 30 more streams on b make a the less loaded.
    assert registry.place("cam-2", streams=45).node_id == "b"
    assert registry.place("cam-3").node_id == "a"
    # The same room stays where it is, whatever the loads.
    registry.report(_report("b", 99))
    assert registry.place("cam-1").node_id == "b"
    # A node without room for the streams is skipped; none with room: NoMediaNode.
    assert registry.place("cam-4", streams=6).node_id == "a"
    with pytest.raises(NoMediaNode):
        registry.place("cam-5", streams=200)


async def test_a_stale_node_gets_nothing_and_its_rooms_move(clock: ManualClock) -> None:
    registry = NodeRegistry(clock, interval_s=2.0)
    registry.report(_report("a", 0))
    registry.report(_report("b", 40))
    assert registry.place("meet-1-1").node_id == "a"
    await clock.advance(5.0)
    registry.report(_report("b", 40))
    assert registry.is_fresh("a")  # 5 s: within 3 intervals
    await clock.advance(1.5)
    registry.report(_report("b", 40))
    assert not registry.is_fresh("a") and registry.get("a") is None
    assert [n.node_id for n in registry.fresh()] == ["b"]
    assert registry.placement("meet-1-1") is None
    assert registry.place("meet-1-1").node_id == "b"
    registry.release("meet-1-1")
    assert registry.placements() == {}


async def test_node_reports_need_the_node_bearer(client: Client, app: web.Application) -> None:
    nodes = app[MEDIA_NODES]
    body = _report("n1", 0).model_dump_json()
    for headers in (
        {},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {node_bearer(b'another secret of 32 bytes.....')}"},
        {"Authorization": f"Basic {node_bearer(nodes.secret)}"},
        {"Authorization": nodes.secret.hex()},
    ):
        response = await client.post(NODE_REPORT_PATH, data=body, headers=headers)
        assert response.status == 401, headers
        assert nodes.secret.hex() not in await response.text()
    assert nodes.registry.fresh() == []
    good = {"Authorization": f"Bearer {node_bearer(nodes.secret)}"}
    response = await client.post(NODE_REPORT_PATH, data=b'{"node_id": "x"}', headers=good)
    assert response.status == 422 and "public_url" in (await response.json())["error"]
    response = await client.post(NODE_REPORT_PATH, data=body, headers=good)
    assert response.status == 200 and (await response.json())["interval_s"] == 2.0
    assert [n.node_id for n in nodes.registry.fresh()] == ["n1"]


async def test_ice_servers_carry_turn_rest_credentials(clock: ManualClock) -> None:
    assert IceServers([], b"s" * 20, timedelta(hours=1), clock).for_subject("user:1") == []
    assert IceServers(["turn:t.test:3478"], None, timedelta(hours=1), clock).for_subject("user:1") == []
    ice = IceServers(["stun:s.test:3478", "turn:t.test:3478?transport=udp"], b"s" * 20, timedelta(hours=1), clock)
    stun, turn = ice.for_subject("user:7")
    assert stun.urls == ["stun:s.test:3478"] and stun.username is None
    assert turn.urls == ["turn:t.test:3478?transport=udp"] and turn.username is not None
    expiry, _, who = turn.username.partition(":")
    assert who == "user:7" and int(expiry) == int((clock.now() + timedelta(hours=1)).timestamp())
    expected = base64.b64encode(hmac.new(b"s" * 20, turn.username.encode(), hashlib.sha1).digest()).decode()
    assert turn.credential == expected


async def test_the_control_client_reaches_the_node_with_the_bearer() -> None:
    secret = b"m" * 32
    node = FakeNode("n1", secret, view_sessions=["s1", "s2"])
    await node.start()
    control, wrong = NodeControl(secret), NodeControl(b"w" * 32)
    await control.start()
    await wrong.start()
    try:
        result = await control.close("n1", node.url, CloseRequest(view_sessions=["s1"], reason="revoked"))
        assert result.closed == 1 and node.closed_sessions() == {"s1"}
        with pytest.raises(ControlError, match="401"):
            await wrong.close("n1", node.url, CloseRequest(view_sessions=["s2"]))
        assert node.refused == 1
        await node.stop()
        with pytest.raises(ControlError, match="could not be reached"):
            await control.close("n1", node.url, CloseRequest(view_sessions=["s2"]))
    finally:
        await control.stop()
        await wrong.stop()
        await node.stop()


async def test_media_nodes_from_the_configuration(tmp_path: Path, clock: ManualClock) -> None:
    secret_file = tmp_path / "turn.secret"
    secret_file.write_text("a-static-auth-secret-of-coturn\n", encoding="utf-8")
    config = make_config(
        tmp_path, turn_urls=["turn:turn.test:3478?transport=udp"], turn_secret_file=secret_file, turn_ttl_s=600
    )
    nodes = MediaNodes.from_config(config, clock)
    media_secret = tmp_path / "media-secret.key"
    assert media_secret.stat().st_mode & 0o777 == 0o600 and nodes.secret.hex() == media_secret.read_text().strip()
    assert MediaNodes.from_config(config, clock).secret == nodes.secret  # read back, not made anew
    (turn,) = nodes.ice_servers("agent:3")
    assert turn.username is not None and turn.username.endswith(":agent:3")
    assert int(turn.username.split(":")[0]) == int(clock.now().timestamp()) + 600
    secret_file.write_text("short\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="too short"):
        MediaNodes.from_config(config, clock)
    with pytest.raises(ValueError, match="turn_urls"):
        make_config(tmp_path, turn_urls=["http://turn.test"])
