"""A bounded, seeded schemathesis run against the real controller: no operation answers with a server error.

The app runs on 127.0.0.1 in a thread of its own (schemathesis calls it with `requests`, synchronously), on a real
SQLite file, seeded with the test world; calls carry an administrator's API token so that state-changing calls
are authorised. Each operation gets a few positive and a few negative examples, derandomized: the run is
repeatable. Operations that lock the administrator out (disable, role change, token revoke) run last.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select

from common.clock import ManualClock
from controller import state
from controller.app import build_app
from controller.db.models import User
from controller.people import tokens
from controller.security.passwords import Passwords, cheap_hasher
from controller.web.openapi import document
from tests.controller.conftest import make_config, seed

EXAMPLES = 30
LAST = ("/disable", "/role", "/revoke", "/reset-password")


class Server:
    """The app served on 127.0.0.1 by an event loop in its own thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app)
        self.url = ""

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def _start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Server:
        self.thread.start()
        self.url = self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


async def _admin_token(app: web.Application) -> str:
    world = await seed(app)
    async with app[state.DB].begin() as session:
        admin = (await session.execute(select(User).where(User.username == world.admin))).scalar_one()
        made = await tokens.create(session, admin.id, name="schemathesis", days=30, now=app[state.CLOCK].now())
    return made.secret


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    app = build_app(
        make_config(tmp_path), clock=ManualClock(), passwords=Passwords(cheap_hasher()), secret_key=b"s" * 32
    )
    with Server(app) as running:
        yield running


def _order(path: str) -> tuple[bool, str]:
    return path.endswith(LAST), path


def test_no_operation_answers_with_a_server_error(server: Server) -> None:
    token = server.run(_admin_token(server.app))
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_dict(document(server.app))
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 40
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for operation in sorted(operations, key=lambda op: _order(op.path)):
        if operation.path == "/api/agents/uplink":  # a WebSocket: tests/controller/test_uplink.py
            continue
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def exercise(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=server.url, headers=headers, timeout=10)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        try:
            exercise()
        except Exception as exc:  # gathered: every failing operation is reported at once
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert statuses.total() >= len(operations) * 2
    assert sum(n for status, n in statuses.items() if 200 <= status < 300) >= len(operations)  # the token works
    assert failures == [], "\n\n".join(failures)
