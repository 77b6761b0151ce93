"""The controller goes down hard (SIGKILL) and comes back: the agent's uplink keeps its changes and resyncs.

Real parts on both ends: the controller is `python -m controller serve` on SQLite, the agent side is the real
`agents.uplink.Uplink` fed from an inventory the test changes while the controller is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agents.enrolment import enrol
from agents.uplink import Uplink
from common.backoff import Backoff
from demo.__main__ import cli_json, wait_http
from demo.processes import Child, run_once
from protocol.camera import CameraReport, CameraState
from tests.ports import free_port
from tests.waiting import eventually, eventually_true


def report(n: int, state: CameraState, reason: str) -> CameraReport:
    now = datetime.now(UTC)
    return CameraReport(
        endpoint_ref=f"urn:uuid:00000000-0000-0000-0000-00000000000{n}",
        address=f"198.18.4.{n}",
        state=state,
        reason=reason,
        first_seen=now,
        last_seen=now,
        changed_at=now,
    )


class Controller:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "KETNOI_CONTROLLER_PORT": str(self.port),
            "KETNOI_CONTROLLER_DATA_DIR": str(tmp / "controller"),
            "KETNOI_CONTROLLER_COOKIE_SECURE": "false",
        }
        self.logs = tmp / "logs"
        self.child: Child | None = None

    async def start(self) -> None:
        self.child = Child("controller", ["controller", "serve"], logs=self.logs, env=self.env)
        await self.child.start()
        await wait_http(f"{self.url}/healthz", self.child, 60)

    async def kill(self) -> None:
        assert self.child is not None and self.child.process is not None
        self.child.process.send_signal(signal.SIGKILL)
        await self.child.process.wait()

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.stop()


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[Controller]:
    c = Controller(tmp_path)
    await run_once(["controller", "migrate"], env=c.env)
    yield c
    await c.stop()


async def technician_api(c: Controller, username: str, password: str, path: str) -> Any:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            f"{c.url}/signin",
            data={"username": username, "password": password},
            headers={"Origin": c.url},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
        async with http.get(c.url + path) as response:
            assert response.status == 200
            return await response.json()


@pytest.mark.slow
async def test_agent_resyncs_after_the_controller_is_killed(controller: Controller, tmp_path: Path) -> None:
    env = controller.env
    department = await cli_json(["controller", "create-unit", "--name", "Sở", "--kind", "department", "--json"], env)
    school = await cli_json(
        [
            *("controller", "create-unit", "--name", "MN Sao Mai", "--kind", "school", "--level", "kindergarten"),
            *("--parent", str(department["id"]), "--camera-network", "198.18.4.0/24", "--json"),
        ],
        env,
    )
    admin = await cli_json(["controller", "create-admin", "--username", "admin", "--json"], env)
    code = await cli_json(["controller", "enrolment-code", "--unit", str(school["id"]), "--json"], env)
    await controller.start()

    enrolled = await enrol(controller.url, code["code"], hostname="mn-sao-mai", version="0.1.0")
    inventory = {
        1: report(1, CameraState.READY, "profiles read"),
        2: report(2, CameraState.READY, "profiles read"),
    }

    async def approve(_: str) -> None:
        return None

    uplink = Uplink(
        controller.url,
        enrolled.token,
        hostname="mn-sao-mai",
        version="0.1.0",
        snapshot=lambda: list(inventory.values()),
        on_approve=approve,
        state_dir=tmp_path / "agent",
        backoff=Backoff(base=0.05, cap=0.5),
    )
    task = asyncio.create_task(uplink.run())
    try:
        async with asyncio.timeout(20):
            await uplink.online.wait()

        async def cameras() -> list[dict[str, Any]]:
            path = f"/api/agents/{enrolled.agent_id}/cameras"
            found: list[dict[str, Any]] = (await technician_api(controller, "admin", admin["password"], path))[
                "cameras"
            ]
            return found

        async def shown(expected: dict[str, str]) -> bool:
            return {c["address"]: c["state"] for c in await cameras()} == expected

        await eventually_true(lambda: shown({"198.18.4.1": "ready", "198.18.4.2": "ready"}), timeout=20)

        # The controller dies without a word; the agent goes on and its changes wait in its buffer.
        await controller.kill()
        await eventually(lambda: not uplink.online.is_set(), timeout=20)
        inventory[1] = report(1, CameraState.UNREACHABLE, "timed out after 10 s at GetProfiles")
        uplink.publish(inventory[1])
        inventory[3] = report(3, CameraState.PENDING_APPROVAL, "outside the camera networks")
        uplink.publish(inventory[3])
        assert uplink.pending == 2

        await controller.start()  # the same database
        await eventually(lambda: uplink.online.is_set() and uplink.pending == 0, timeout=30)
        await eventually_true(
            lambda: shown({"198.18.4.1": "unreachable", "198.18.4.2": "ready", "198.18.4.3": "pending_approval"}),
            timeout=20,
        )
        agent = await technician_api(controller, "admin", admin["password"], f"/api/agents/{enrolled.agent_id}")
        assert agent["online"] is True
        assert len(await cameras()) == 3  # resynced, nothing twice
        assert uplink.connections == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
