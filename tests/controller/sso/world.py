"""The single sign-on tests' world: the real controller app with a real fake provider on 127.0.0.1, and the
browser's steps through the flow by hand (each redirect followed explicitly)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select
from yarl import URL

from common.clock import ManualClock
from controller import state
from controller.app import build_app
from controller.db.models import AuditEntry
from controller.security.passwords import Passwords, cheap_hasher
from controller.sso.routes import CALLBACK_PATH
from tests.controller.conftest import AiohttpClient, Client, World, make_config, seed
from tests.controller.sso.fake_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider

TEACHERS = "hoa-sen-teachers"
TECHS = "q1-technicians"
ADMINS = "ketnoi-admins"


@dataclass
class Setup:
    client: Client
    app: web.Application
    fake: FakeProvider
    world: World


def _secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "sso-client-secret"
    path.write_text(CLIENT_SECRET + "\n")
    return path


async def setup_sso(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider, **overrides: Any
) -> Setup:
    # Fresh database: seed() makes department 1, districts 2 and 3, schools 4 and 5 (checked below).
    values: dict[str, Any] = {
        "sso_issuer": fake.issuer,
        "sso_client_id": CLIENT_ID,
        "sso_client_secret_file": _secret_file(tmp_path),
        "sso_role_map": {
            ADMINS: {"role": "admin"},
            TECHS: {"role": "district_technician", "unit_id": 2},
            TEACHERS: {"role": "teacher", "unit_id": 4},
        },
        "sso_create_users": True,
    } | overrides
    app = build_app(make_config(tmp_path, **values), clock=clock, passwords=Passwords(cheap_hasher()),
                    secret_key=b"s" * 32)  # fmt: skip
    client = await aiohttp_client(app)
    world = await seed(app)
    assert (world.district, world.school) == (2, 4)
    return Setup(client, app, fake, world)


async def to_provider(client: Client, next_path: str = "/") -> str:
    response = await client.get("/signin/sso", params={"next": next_path}, allow_redirects=False)
    assert response.status == 302, await response.text()
    return response.headers["Location"]


async def authorize(location: str) -> URL:
    """The browser at the provider: it answers with a redirect back to the controller's callback."""
    async with aiohttp.ClientSession() as browser, browser.get(location, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        back = URL(response.headers["Location"])
    assert back.path == CALLBACK_PATH
    return back


async def sign_in_sso(client: Client, next_path: str = "/") -> aiohttp.ClientResponse:
    back = await authorize(await to_provider(client, next_path))
    return await client.get(back.path_qs, allow_redirects=False)


async def audit_of(app: web.Application, prefix: str) -> list[AuditEntry]:
    async with app[state.DB]() as session:
        rows = await session.execute(select(AuditEntry).where(AuditEntry.action.startswith(prefix)))
        return list(rows.scalars())


async def whoami(client: Client) -> dict[str, Any]:
    response = await client.get("/api/session")
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def reason_of(page: str) -> str:
    marker = 'data-reason="'
    assert marker in page, page
    return page.split(marker, 1)[1].split('"', 1)[0]
