"""The long-running agent: passes feed the inventory, approvals take effect, /healthz answers, stop is clean."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from agents.discovery.credentials import CredentialBook
from agents.inventory import Inventory
from agents.service import Agent
from protocol.camera import CameraReport, CameraState
from tests.agents.cameras import config, running, spec
from tests.waiting import eventually, eventually_true

REPO = Path(__file__).resolve().parents[2]
INSIDE = "127.0.1.130"
OUTSIDE = "127.0.1.137"


async def test_pending_camera_is_interrogated_after_approval(tmp_path: Path) -> None:
    cfg = config(tmp_path, [INSIDE, OUTSIDE], networks=["127.0.1.128/30"])
    cameras = [spec("inside", INSIDE), spec("outside", OUTSIDE)]
    async with running(cameras) as (inside, outside), await Inventory.open(tmp_path) as inventory:
        changes: list[CameraReport] = []
        inventory.subscribe(changes.append)
        # Not enrolled (no token): the agent runs without a controller.
        agent = Agent(cfg, CredentialBook.from_config(cfg), inventory)
        task = asyncio.create_task(agent.run())
        try:
            await eventually(lambda: agent.passes >= 1, timeout=10)
            states = {r.name: r.state for r in inventory.snapshot()}
            assert states == {"inside": CameraState.READY, "outside": CameraState.PENDING_APPROVAL}
            pending = inventory.get(outside.spec.endpoint_ref)
            assert pending is not None and "outside the camera networks" in pending.reason
            # The site's credentials never went to the device outside the camera networks.
            assert outside.requests == []

            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{agent.health_port}/healthz") as r:
                health = await r.json()
            assert r.status == 200 and health["cameras"] == {"ready": 1, "pending_approval": 1}
            assert health["uplink_online"] is None

            await agent.approve(outside.spec.endpoint_ref)
            await eventually(lambda: agent.passes >= 2, timeout=10)
            approved = inventory.get(outside.spec.endpoint_ref)
            assert approved is not None
            assert approved.state is CameraState.READY, approved.reason
            assert "approved by a technician" in approved.reason
        finally:
            agent.stop()
            await asyncio.wait_for(task, 5)
    # Per camera: found, then its state, then (for the approved one) ready; no repeats across passes.
    history: dict[str, list[str]] = {}
    for change in changes:
        history.setdefault(change.name, []).append(change.state.value)
    assert history == {"inside": ["found", "ready"], "outside": ["found", "pending_approval", "ready"]}
    assert inside.requests  # it was asked


async def test_agent_keeps_discovering_while_the_controller_is_down(tmp_path: Path) -> None:
    cfg = config(tmp_path, [INSIDE], networks=["127.0.1.128/30"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens here once the socket is closed
    async with running([spec("inside", INSIDE)]), await Inventory.open(tmp_path) as inventory:
        agent = Agent(
            cfg,
            CredentialBook.from_config(cfg),
            inventory,
            token="agent-token-for-a-dead-controller",
            controller_url=f"http://127.0.0.1:{closed_port}",
        )
        task = asyncio.create_task(agent.run())
        try:
            await eventually(lambda: agent.passes >= 1, timeout=10)
            assert [r.state for r in inventory.snapshot()] == [CameraState.READY]
            assert agent.uplink is not None and not agent.uplink.online.is_set()
            assert agent.uplink.pending >= 1  # the change waits for the controller
        finally:
            agent.stop()
            await asyncio.wait_for(task, 5)


async def test_run_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "{tmp_path}"\nhealth_port = {port}\n'
        f'[site]\ncamera_networks = ["127.0.1.128/30"]\nmulticast = false\nunicast_targets = ["{INSIDE}"]\n'
        '[credentials]\npassword = "p@ss:w/rd%"\n[timeouts]\nprobe_wait_s = 0.3\n'
    )
    async with running([spec("inside", INSIDE)]):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agents",
            "--config",
            str(path),
            "run",
            cwd=REPO,
            env=dict(os.environ),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            healthy: dict[str, object] = {}

            async def ready() -> bool:
                try:
                    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        healthy.update(await r.json())
                except aiohttp.ClientError:
                    return False
                return healthy.get("cameras") == {"ready": 1}

            await eventually_true(ready, timeout=10, interval=0.05)
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 10)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"agent stopped" in stderr
