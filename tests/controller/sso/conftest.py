"""Fixtures of the single sign-on tests: the fake provider on 127.0.0.1 and a controller configured for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from common.clock import ManualClock
from tests.controller.conftest import AiohttpClient
from tests.controller.sso.fake_provider import FakeProvider
from tests.controller.sso.world import TEACHERS, Setup, setup_sso
from tests.ports import free_port


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeProvider]:
    provider = FakeProvider(clock)
    server = TestServer(provider.app(), host="127.0.0.1", port=free_port())
    await server.start_server()
    provider.issuer = f"http://127.0.0.1:{server.port}"
    provider.user = {"sub": "sub-0001", "preferred_username": "nguyen.van.a", "name": "Nguyễn Văn A",
                     "groups": ["all-staff", TEACHERS]}  # fmt: skip
    yield provider
    await server.close()


@pytest.fixture
async def sso(aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider) -> Setup:
    return await setup_sso(aiohttp_client, tmp_path, clock, fake)
