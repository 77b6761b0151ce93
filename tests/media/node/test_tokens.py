"""Every token refusal at the node, for WHIP (publish) and WHEP (view): refused with 401 or 403 and counted."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import jwt
import pytest

from protocol.media import MediaTokens, TokenKind
from tests.media.node.helpers import (
    NODE_ID,
    DecodingViewer,
    LoopPublisher,
    RunningNode,
    h264_loop,
    offer_of,
    peer,
    post_sdp,
    running_node,
)

ROOM = "cam-4"
ENDPOINTS = {"whip": TokenKind.PUBLISH, "whep": TokenKind.VIEW}


def tamper(token: str) -> str:
    """The same claims with one byte of the signature changed."""
    head, body, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return ".".join([head, body, base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")])


def swap_claims(token: str, **changes: object) -> str:
    """Claims edited (another room, say) while keeping the original signature."""
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return ".".join([head, edited, signature])


def unsigned(token: str) -> str:
    """`alg: none` with the same claims."""
    claims = jwt.decode(token, options={"verify_signature": False})
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{body}."


Make = Callable[[RunningNode, TokenKind], str | None]
CASES: list[tuple[str, Make, int, str]] = [
    ("no token", lambda n, k: None, 401, "missing"),
    ("tampered signature", lambda n, k: tamper(n.token(k, ROOM)), 401, "tampered"),
    ("edited room, old signature", lambda n, k: swap_claims(n.token(k, "cam-5"), room=ROOM), 401, "tampered"),
    ("alg none", lambda n, k: unsigned(n.token(k, ROOM)), 401, "tampered"),
    ("garbage", lambda n, k: "not-a-token", 401, "tampered"),
    (
        "another secret",
        lambda n, k: MediaTokens(b"another media secret of length", n.clock).issue(
            kind=k, node=NODE_ID, room=ROOM, subject="user:1", ttl=timedelta(seconds=60)
        ),
        401,
        "tampered",
    ),
    ("expired", lambda n, k: n.token(k, ROOM, ttl_s=-1), 401, "expired"),
    ("another node", lambda n, k: n.token(k, ROOM, node="media-other"), 403, "wrong_node"),
    ("another camera", lambda n, k: n.token(k, "cam-5"), 403, "wrong_room"),
    (
        "another purpose",
        lambda n, k: n.token(TokenKind.MEETING if k is TokenKind.VIEW else TokenKind.VIEW, ROOM),
        403,
        "wrong_kind",
    ),
]


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_bad_tokens_are_refused_and_counted(tmp_path: Path, endpoint: str) -> None:
    async with running_node(tmp_path) as node:
        pc = peer()
        try:
            offer = await offer_of(pc)
            for name, make, status, reason in CASES:
                before = node.context.metrics.refusal_count(endpoint, reason)
                url = f"{node.url}/{endpoint}/{ROOM}"
                got, body, headers = await post_sdp(url, make(node, ENDPOINTS[endpoint]), offer)
                assert (got, json.loads(body).get("reason")) == (status, reason), name
                if status == 401:
                    assert headers["WWW-Authenticate"].startswith("Bearer"), name
                assert node.context.metrics.refusal_count(endpoint, reason) == before + 1, name
            assert node.live.load().relays == 0  # nothing was set up for a refused request
            async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
                text = await response.text()
            line = f'ketnoi_media_token_refusals_total{{endpoint="{endpoint}",reason="wrong_room"}} 1.0'
            assert line in text
        finally:
            await pc.close()


async def test_a_publish_token_works_once(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        loop = await h264_loop()
        token = node.token(TokenKind.PUBLISH, ROOM)
        first, second = LoopPublisher(loop), LoopPublisher(loop)
        try:
            assert await first.publish(node, ROOM, token) == 201
            assert await second.publish(node, ROOM, token) == 403
            assert node.context.metrics.refusal_count("whip", "replayed") == 1
        finally:
            await first.close()
            await second.close()


async def test_a_view_token_works_once(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        token = node.view_token(ROOM)
        first, second = DecodingViewer(), DecodingViewer()
        try:
            assert (await first.view(node, ROOM, token))[0] == 201
            status, body = await second.view(node, ROOM, token)
            assert (status, json.loads(body)["reason"]) == (403, "replayed")
            assert node.context.metrics.refusal_count("whep", "replayed") == 1
            assert node.live.load().subscribers == 1
        finally:
            await first.close()
            await second.close()


async def test_a_publish_token_does_not_open_a_view_and_the_refusal_does_not_burn_it(tmp_path: Path) -> None:
    """A token refused for its purpose was not consumed: the agent can still publish with it."""
    async with running_node(tmp_path) as node:
        token = node.token(TokenKind.PUBLISH, ROOM)
        viewer, publisher = DecodingViewer(), LoopPublisher(await h264_loop())
        try:
            assert (await viewer.view(node, ROOM, token))[0] == 403
            assert await publisher.publish(node, ROOM, token) == 201
        finally:
            await viewer.close()
            await publisher.close()


async def test_a_view_token_without_session_or_device_is_refused(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        pc = peer()
        pc.addTransceiver("video", direction="recvonly")
        try:
            offer = await offer_of(pc)
            tokens = [
                node.token(TokenKind.VIEW, ROOM, device="phone-1"),
                node.token(TokenKind.VIEW, ROOM, session="live-1"),
                node.token(TokenKind.VIEW, ROOM),
            ]
            for token in tokens:
                status, body, _ = await post_sdp(f"{node.url}/whep/{ROOM}", token, offer)
                assert (status, json.loads(body)["reason"]) == (403, "incomplete")
            assert node.context.metrics.refusal_count("whep", "incomplete") == 3
        finally:
            await pc.close()
