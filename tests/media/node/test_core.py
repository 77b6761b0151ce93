"""The node's configuration, its HTTP edges (body limits, rate limit, CORS for WHEP only, unknown rooms and
sessions) and its health and metrics endpoints."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from common.config import ConfigError
from media.node.config import load_media_secret, load_node_config
from media.node.metrics import REFUSAL_REASONS
from protocol.media import TokenKind
from tests.media.node.helpers import offer_of, peer, post_sdp, running_node
from tests.test_agent_metrics import promtool_check_metrics

ROOM = "cam-3"
ORIGIN = "https://ketnoi.example.vn"


def test_environment_overrides_the_file_and_problems_name_the_variable(tmp_path: Path) -> None:
    file = tmp_path / "media.toml"
    file.write_text('node_id = "media-7"\nport = 9000\ncors_origins = ["https://a.example/"]\n', encoding="utf-8")
    config = load_node_config(file, {"KETNOI_MEDIA_PORT": "9100", "KETNOI_MEDIA_LOOPBACK_CANDIDATES": "true"})
    assert (config.node_id, config.port, config.loopback_candidates) == ("media-7", 9100, True)
    assert config.cors_origins == ["https://a.example"]
    assert config.effective_public_url == "http://127.0.0.1:9100"
    with pytest.raises(ConfigError, match="KETNOI_MEDIA_NODE_ID"):
        load_node_config(None, {"KETNOI_MEDIA_NODE_ID": "no spaces allowed"})
    with pytest.raises(ConfigError, match="KETNOI_MEDIA_CORS_ORIGINS"):
        load_node_config(None, {"KETNOI_MEDIA_CORS_ORIGINS": '["https://a.example/path"]'})
    with pytest.raises(ConfigError, match="KETNOI_MEDIA_CONTROLLER_URL"):
        load_node_config(None, {"KETNOI_MEDIA_CONTROLLER_URL": "ftp://controller"})


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("zz-not-hex", "hex"), ("abcd", "too short"), ("abc", "hex")],
)
def test_the_media_secret_file_must_hold_a_long_hex_secret(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content, encoding="ascii")
    with pytest.raises(ConfigError, match=message):
        load_media_secret(path)


def test_the_media_secret_is_read_as_the_controller_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("00" * 16 + "ff" * 16 + "\n", encoding="ascii")
    assert load_media_secret(path) == bytes(16) + b"\xff" * 16


async def test_health_and_metrics(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node, aiohttp.ClientSession() as http:
        async with http.get(f"{node.url}/healthz") as response:
            health = await response.json()
        assert health["status"] == "ok" and health["node_id"] == "media-test"
        async with http.get(f"{node.url}/metrics") as response:
            text = await response.text()
        for name in ("relays", "viewers", "publishers", "bytes_in_total", "bytes_out_total", "frames_in_total",
                     "frames_out_total", "keyframe_requests_total",
                     "retransmitted_packets_total", "retransmissions_refused_total"):  # fmt: skip
            assert f"\nketnoi_media_{name} " in text, name
        for reason in REFUSAL_REASONS:
            assert f'ketnoi_media_token_refusals_total{{endpoint="whep",reason="{reason}"}} 0.0' in text
        assert node.secret.hex() not in text
        assert promtool_check_metrics(text) == ""


async def test_bodies_are_checked_before_tokens_are_spent(tmp_path: Path) -> None:
    async with running_node(tmp_path, max_sdp_bytes=8192) as node, aiohttp.ClientSession() as http:
        token = node.view_token(ROOM)
        auth = {"Authorization": f"Bearer {token}"}
        cases = [
            ({"Content-Type": "text/plain"}, b"v=0\r\n", 415),
            ({"Content-Type": "application/sdp"}, b"v=0\r\n" + b"a" * 9000, 413),
            ({"Content-Type": "application/sdp"}, b"hello", 400),
            ({"Content-Type": "application/sdp"}, b"v=0\xff\xfe", 400),
        ]
        for headers, body, status in cases:
            async with http.post(f"{node.url}/whep/{ROOM}", data=body, headers={**headers, **auth}) as response:
                assert response.status == status, (headers, body[:10])
                assert "error" in await response.json()
        pc = peer()
        pc.addTransceiver("video", direction="recvonly")
        try:
            # The token was not spent by the refused bodies: it still opens the view.
            assert (await post_sdp(f"{node.url}/whep/{ROOM}", token, await offer_of(pc)))[0] == 201
        finally:
            await pc.close()


@pytest.mark.parametrize("path", ["/whep/room-1", "/whip/cam-", "/whep/cam-1x", "/whip/meet-1-2"])
async def test_only_camera_relays_are_served(tmp_path: Path, path: str) -> None:
    async with running_node(tmp_path) as node:
        status, _, _ = await post_sdp(node.url + path, node.view_token(ROOM), "v=0\r\n")
        assert status == 404


@pytest.mark.parametrize("path", ["/whep/cam-3/AAAAAAAAAAAAAAAAAAAAAA", "/whip/cam-3/AAAAAAAAAAAAAAAAAAAAAA",
                                  "/whep/cam-3/short", "/whep/cam-3/..%2F..%2Fetc"])  # fmt: skip
async def test_deleting_an_unknown_session_is_a_404(tmp_path: Path, path: str) -> None:
    async with running_node(tmp_path) as node, aiohttp.ClientSession() as http, http.delete(node.url + path) as r:
        assert r.status == 404


async def test_token_endpoints_are_rate_limited_per_address(tmp_path: Path) -> None:
    async with running_node(tmp_path, token_requests_per_minute=3) as node:
        statuses = [(await post_sdp(f"{node.url}/whep/{ROOM}", "x", "v=0\r\n"))[0] for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        assert node.context.metrics.refusal_count("whep", "rate_limited") == 2
        # The limit is per address, across both endpoints.
        assert (await post_sdp(f"{node.url}/whip/{ROOM}", "x", "v=0\r\n"))[0] == 429


async def test_cors_answers_the_configured_origins_only_and_only_for_whep(tmp_path: Path) -> None:
    async with running_node(tmp_path, cors_origins=[ORIGIN]) as node, aiohttp.ClientSession() as http:
        preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip
        async with http.options(f"{node.url}/whep/{ROOM}", headers=preflight) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
            assert "DELETE" in response.headers["Access-Control-Allow-Methods"]
        async with http.options(
            f"{node.url}/whep/{ROOM}", headers={**preflight, "Origin": "https://evil.example"}
        ) as r:
            assert r.status == 403
            assert "Access-Control-Allow-Origin" not in r.headers
        # A refusal still carries the CORS headers for an allowed origin (so the page can read the reason).
        async with http.post(f"{node.url}/whep/{ROOM}", data=b"v=0\r\n",
                             headers={"Origin": ORIGIN, "Content-Type": "application/sdp"}) as response:  # fmt: skip
            assert response.status == 401
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert response.headers["Access-Control-Expose-Headers"] == "Location"
        evil = {"Origin": "https://evil.example", "Content-Type": "application/sdp"}
        async with http.post(f"{node.url}/whep/{ROOM}", data=b"v=0\r\n", headers=evil) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
        async with http.options(f"{node.url}/whip/{ROOM}", headers=preflight) as response:
            assert "Access-Control-Allow-Origin" not in response.headers


async def test_a_full_node_refuses_viewers_with_503(tmp_path: Path) -> None:
    async with running_node(tmp_path, capacity_streams=1) as node:
        first, second = peer(), peer()
        for pc in (first, second):
            pc.addTransceiver("video", direction="recvonly")
        try:
            assert (await post_sdp(f"{node.url}/whep/{ROOM}", node.view_token(ROOM), await offer_of(first)))[0] == 201
            status, body, _ = await post_sdp(
                f"{node.url}/whep/{ROOM}", node.view_token(ROOM, session="live-2"), await offer_of(second)
            )
            assert status == 503 and "full" in body
        finally:
            await first.close()
            await second.close()


async def test_an_offer_without_h264_video_is_a_400(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        pc = peer()
        pc.addTransceiver("audio", direction="sendonly")
        try:
            status, body, _ = await post_sdp(
                f"{node.url}/whip/{ROOM}", node.token(TokenKind.PUBLISH, ROOM), await offer_of(pc)
            )
            assert status == 400 and "H.264" in body
        finally:
            await pc.close()


def test_the_command_line_refuses_a_bad_configuration_with_a_message(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.key"
    result = subprocess.run(
        [sys.executable, "-m", "media", "serve"],
        env={"KETNOI_MEDIA_MEDIA_SECRET_FILE": str(missing), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"media_secret_file {missing} does not exist" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "media", "serve"],
        env={"KETNOI_MEDIA_PORT": "eighty", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "KETNOI_MEDIA_PORT" in result.stderr


async def test_tokens_never_reach_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_node(tmp_path) as node:
        pc = peer()
        pc.addTransceiver("video", direction="recvonly")
        tokens = [node.view_token(ROOM), node.view_token("cam-99"), node.token(TokenKind.VIEW, ROOM, ttl_s=-1)]
        try:
            offer = await offer_of(pc)
            for token in tokens:
                await post_sdp(f"{node.url}/whep/{ROOM}", token, offer)
            await post_sdp(f"{node.url}/whep/{ROOM}", tokens[0], offer)  # replayed
        finally:
            await pc.close()
    for token in tokens:
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text
    assert node.secret.hex() not in caplog.text
