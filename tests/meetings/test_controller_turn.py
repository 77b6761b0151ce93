"""With TURN configured, the meeting page gets TURN REST credentials for its join link with each pass (and so
again with each rejoin's fresh pass)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from common.clock import ManualClock
from controller import state
from controller.config import ControllerConfig
from controller.medianodes import MEDIA_NODES
from protocol.meeting import JoinInfo
from tests.controller.bookings.conftest import Site
from tests.controller.conftest import Client, make_config
from tests.meetings.test_controller import _join, _links, _move_to, _report

TURN_SECRET = b"coturn static-auth-secret, test"
TURN_URL = "turn:turn.test:3478?transport=udp"


@pytest.fixture
def config(tmp_path: Path) -> ControllerConfig:
    secret = tmp_path / "turn-secret"
    secret.write_bytes(TURN_SECRET)
    return make_config(tmp_path, turn_urls=[TURN_URL], turn_secret_file=secret, turn_ttl_s=3600)


async def test_each_pass_carries_turn_credentials_for_the_join_link(
    client: Client, app: web.Application, site: Site
) -> None:
    clock = app[state.CLOCK]
    assert isinstance(clock, ManualClock)
    _, urls = await _links(client, site, "meeting")
    await _move_to(clock, datetime(2026, 1, 6, 2, 0, tzinfo=UTC))
    passes = []
    for _ in range(2):
        app[MEDIA_NODES].registry.report(_report("media-a", 8600))  # as its load reports keep doing
        status, body = await _join(client, urls[f"{site.room}:participant"])
        assert status == 200, body
        passes.append(JoinInfo.model_validate(body))
        await clock.advance(30)
    for info, issued in zip(
        passes, (clock.now() - timedelta(seconds=60), clock.now() - timedelta(seconds=30)), strict=True
    ):
        (turn,) = info.ice_servers
        assert turn.urls == [TURN_URL] and turn.username is not None and turn.credential is not None
        expiry, _, subject = turn.username.partition(":")
        assert subject.startswith("join:") and int(expiry) == int((issued + timedelta(hours=1)).timestamp())
        digest = hmac.new(TURN_SECRET, turn.username.encode(), hashlib.sha1).digest()
        assert turn.credential == base64.b64encode(digest).decode()
    assert passes[0].ice_servers[0].username != passes[1].ice_servers[0].username  # fresh with each pass
