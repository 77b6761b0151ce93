"""The whole agent, enrolled with the real controller, answers Prometheus through the controller with the same
metric families its LAN /metrics serves (agents/service.py wires its registry into the uplink)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from agents.discovery.credentials import CredentialBook
from agents.inventory import Inventory
from agents.service import Agent
from controller.uplink.metrics_proxy import METRICS_PROXY
from tests.agents.cameras import config
from tests.controller.conftest import Client, World
from tests.controller.test_agent_metrics_proxy import api_token
from tests.controller.uplink_helpers import enrol, until


def _families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


async def test_the_agent_s_metrics_reach_prometheus_through_the_controller(
    client: Client, app: web.Application, world: World, tmp_path: Path
) -> None:
    token = await api_token(app, world.admin)
    enrolled = await enrol(client, app, world.school)
    cfg = config(tmp_path, [], recording={"enabled": False})
    async with await Inventory.open(tmp_path) as inventory:
        agent = Agent(cfg, CredentialBook.from_config(cfg), inventory, token=enrolled.token,
                      controller_url=str(client.make_url("")).rstrip("/"))  # fmt: skip
        task = asyncio.create_task(agent.run())
        try:

            async def connected() -> bool:
                return app[METRICS_PROXY].reachable(int(enrolled.agent_id)) is not None  # welcomed

            await until(connected)
            proxied = await client.get(
                f"/api/agents/{enrolled.agent_id}/metrics", headers={"Authorization": f"Bearer {token}"}
            )
            assert proxied.status == 200, await proxied.text()
            through_controller = _families(await proxied.text())
            lan_url = f"http://127.0.0.1:{agent.health_port}/metrics"
            async with aiohttp.ClientSession() as http, http.get(lan_url) as response:
                on_the_lan = _families(await response.text())
            assert "ketnoi_agent_live_publications" in through_controller
            assert through_controller == on_the_lan
        finally:
            agent.stop()
            await asyncio.wait_for(task, 15)
