"""Debian's real Prometheus, with the `agents` job of dashboards/prometheus/prometheus.yml, finds a real agent
through the controller's service discovery and scrapes it through the uplink proxy: up == 1 and the agent's own
series arrive. Everything on 127.0.0.1; the TSDB in a temporary directory; bounded in time."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from tests.controller.conftest import Client, World
from tests.controller.test_agent_metrics_proxy import CAMERA, agent_uplink, api_token, running
from tests.controller.uplink_helpers import enrol
from tests.ports import free_port
from tests.waiting import eventually_true

REPO_CONFIG = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus" / "prometheus.yml"


def _config(controller: str, token_file: Path) -> dict[str, Any]:
    """The repository's `agents` job, pointed at this controller, with intervals short enough for a test."""
    jobs = yaml.safe_load(REPO_CONFIG.read_text())["scrape_configs"]
    job = next(j for j in jobs if j["job_name"] == "agents")
    job |= {"scrape_interval": "1s", "scrape_timeout": "1s"}
    job["authorization"]["credentials_file"] = str(token_file)
    for sd in job["http_sd_configs"]:
        sd["url"] = sd["url"].replace("controller:8000", controller)
        sd["refresh_interval"] = "1s"
        sd["authorization"]["credentials_file"] = str(token_file)
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [job]}


@contextlib.asynccontextmanager
async def _prometheus(tmp_path: Path, config: dict[str, Any]) -> AsyncIterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: scripts/setup.sh --tests installs Debian's prometheus"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={address}",
            "--log.level=warn",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    try:
        yield f"http://{address}"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _query(http: aiohttp.ClientSession, base: str, expr: str) -> list[dict[str, Any]]:
    try:
        async with http.get(f"{base}/api/v1/query", params={"query": expr}) as response:
            if response.status != 200:
                return []
            answer: dict[str, Any] = await response.json()
    except aiohttp.ClientConnectionError:  # not listening yet
        return []
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def test_prometheus_scrapes_an_agent_through_the_controller(
    client: Client, app: web.Application, world: World, tmp_path: Path
) -> None:
    token_file = tmp_path / "controller-token"
    token_file.write_text(await api_token(app, world.admin))
    token_file.chmod(0o600)
    agent = await enrol(client, app, world.school)
    uplink = agent_uplink(client, agent.token)
    config = _config(f"127.0.0.1:{client.port}", token_file)
    async with (
        running(uplink, app, agent.agent_id),
        _prometheus(tmp_path, config) as base,
        aiohttp.ClientSession() as http,
    ):
        up: list[dict[str, Any]] = []

        async def scraped() -> bool:
            nonlocal up
            up = await _query(http, base, 'up{job="agents"}')
            return any(sample["value"][1] == "1" for sample in up)

        try:
            await eventually_true(scraped, timeout=60, interval=0.5)
        except TimeoutError:
            log = (tmp_path / "prometheus.log").read_text(errors="replace")
            raise AssertionError(f"no successful scrape; up={up}; prometheus said:\n{log[-3000:]}") from None
        assert [sample["metric"] for sample in up] == [
            {"__name__": "up", "job": "agents", "instance": f"agent-{agent.agent_id}", "agent": agent.agent_id,
             "site": "Mầm non <b>Hoa Sen</b>", "site_id": agent.site_id}
        ]  # fmt: skip
        cameras = await _query(http, base, "ketnoi_agent_camera_up")
        assert [(s["metric"]["camera"], s["metric"]["instance"], s["value"][1]) for s in cameras] == [
            (CAMERA, f"agent-{agent.agent_id}", "1")
        ]
