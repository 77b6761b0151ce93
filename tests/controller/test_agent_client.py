"""The agent's own uplink client (agents/) against the real controller: the contract holds from both ends."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web
from sqlalchemy import select

from agents.enrolment import EnrolmentError, enrol
from agents.uplink import Uplink
from controller import state
from controller.db.models import Camera
from protocol.camera import CameraReport, CameraState
from tests.controller.conftest import ORIGIN, Client, World, sign_in
from tests.controller.uplink_helpers import camera, new_code, until
from tests.waiting import eventually


async def test_agent_enrols_connects_updates_and_gets_approvals(
    client: Client, app: web.Application, world: World
) -> None:
    base = str(client.make_url("")).rstrip("/")
    with pytest.raises(EnrolmentError, match="not known"):
        await enrol(base, "WRONG-CODE1", hostname="agent-x", version="0.1.0")
    response = await enrol(base, await new_code(app, world.school), hostname="agent-x", version="0.1.0")
    inventory: dict[str, CameraReport] = {
        c.endpoint_ref: c
        for c in (camera(1), camera(2, CameraState.PENDING_APPROVAL, "outside the site's networks", "10.0.0.9"))
    }
    approved: list[str] = []

    async def on_approve(ref: str) -> None:
        approved.append(ref)

    uplink = Uplink(
        base,
        response.token,
        hostname="agent-x",
        version="0.1.0",
        snapshot=lambda: list(inventory.values()),
        on_approve=on_approve,
    )
    task = asyncio.create_task(uplink.run())
    try:
        await asyncio.wait_for(uplink.online.wait(), 10)
        changed = camera(1, CameraState.UNREACHABLE, "stopped answering")
        inventory[changed.endpoint_ref] = changed
        uplink.publish(changed)
        await eventually(lambda: uplink.pending == 0)

        async def stored() -> bool:
            async with app[state.DB]() as session:
                row = (
                    await session.execute(select(Camera).where(Camera.endpoint_ref == changed.endpoint_ref))
                ).scalar_one()
            return row.state is CameraState.UNREACHABLE

        await until(stored)
        token = await sign_in(client, world.technician)
        cameras = await (await client.get(f"/api/agents/{response.agent_id}/cameras")).json()
        pending = next(c for c in cameras["cameras"] if c["state"] == "pending_approval")
        result = await client.post(f"/api/cameras/{pending['id']}/approve", headers={**ORIGIN, "X-CSRF-Token": token})
        assert result.status == 200
        await eventually(lambda: approved == [pending["endpoint_ref"]])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
