"""Discovery across hosts: cameras in three network namespaces on a bridge, the agent in a fourth.

- cams1 and cams2 hear the multicast probe: found by multicast.
- cams3 sits behind a switch port that drops multicast (tests/netns.py `block_multicast`: multicast flooding off
  on its bridge port, IGMP snooping off) and has no multicast route: only the unicast probes to its configured
  range (198.18.3.0/28) find it. A pass without unicast targets shows that multicast alone does not.
- rogue is on a network that is not the site's: it is reported pending_approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.cameras import PASSWORD
from tests.netns import Lab, Namespace, available

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")
SITE_NETWORKS = ["198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"]


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, Namespace]]:
    if not available():
        pytest.skip("cannot create network namespaces here")
    with Lab() as made:
        members = {
            "agent": made.add("agent", "198.18.0.10/16", multicast_route=False),
            "cams1": made.add("cams1", "198.18.1.1/16", "198.18.1.2/16"),
            "cams2": made.add("cams2", "198.18.2.1/16", "198.18.2.2/16"),
            "cams3": made.add("cams3", "198.18.3.1/16", "198.18.3.2/16", multicast_route=False),
            "rogue": made.add("rogue", "198.18.9.1/16"),
        }
        made.block_multicast(members["cams3"])
        yield members


@contextlib.asynccontextmanager
async def simulators(lab: dict[str, Namespace]) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """One simulator process per camera namespace; yields the cameras by address once all are ready."""
    plan = [
        ("cams1", "198.18.1.1", 2),
        ("cams2", "198.18.2.1", 2),
        ("cams3", "198.18.3.1", 2),
        ("rogue", "198.18.9.1", 1),
    ]
    env = {**os.environ, "KETNOI_SIM_PASSWORD": PASSWORD}
    processes: list[asyncio.subprocess.Process] = []
    cameras: dict[str, dict[str, Any]] = {}
    try:
        for ns, first, count in plan:
            argv = [PYTHON, "-m", "simulator", "--cameras", str(count), "--first-host", first, "--json"]
            argv += ["--name-prefix", f"{ns}-"]
            process = await asyncio.create_subprocess_exec(
                *lab[ns].command(argv), cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE
            )
            processes.append(process)
        for process in processes:
            assert process.stdout is not None
            while True:
                line = await asyncio.wait_for(process.stdout.readline(), 30)
                assert line, "a simulator exited before it was ready"
                data = json.loads(line)
                if data.get("ready"):
                    break
                cameras[data["host"]] = data
        yield cameras
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def write_config(tmp: Path, *, unicast: bool) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "agent.toml"
    # With unicast targets the probe also leaves from the configured site address; without, from every interface.
    site = 'unicast_targets = ["198.18.3.0/28"]\nprobe_address = "198.18.0.10"\n' if unicast else ""
    path.write_text(
        f'state_dir = "{tmp / "state"}"\n'
        f"[site]\ncamera_networks = {json.dumps(SITE_NETWORKS)}\n{site}"
        '[credentials]\nusername = "admin"\npassword_env = "CAMERA_PASSWORD"\n'
        "[timeouts]\ndevice_deadline_s = 5\n"
    )
    return path


async def discover(agent: Namespace, path: Path) -> list[dict[str, Any]]:
    argv = [PYTHON, "-m", "agents", "--config", str(path), "discover", "--json", "--wait", "1.0"]
    process = await asyncio.create_subprocess_exec(
        *agent.command(argv),
        cwd=REPO,
        env={**os.environ, "CAMERA_PASSWORD": PASSWORD},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert PASSWORD.encode() not in stdout + stderr
    reports: list[dict[str, Any]] = json.loads(stdout)
    return reports


async def test_multicast_unicast_and_foreign_networks(lab: dict[str, Namespace], tmp_path: Path) -> None:
    async with simulators(lab) as cameras:
        assert len(cameras) == 7
        with_unicast, multicast_only = await asyncio.gather(
            discover(lab["agent"], write_config(tmp_path / "a", unicast=True)),
            discover(lab["agent"], write_config(tmp_path / "b", unicast=False)),
        )
    by_address = {r["address"]: r for r in with_unicast}
    assert sorted(by_address) == sorted(cameras)
    for address, report in by_address.items():
        assert report["endpoint_ref"] == cameras[address]["endpoint_ref"]
        if address.startswith("198.18.9."):
            assert report["state"] == "pending_approval", report
            assert "outside the camera networks" in report["reason"]
            assert report["profiles"] == []
        else:
            assert report["state"] == "ready", report
            main = next(p for p in report["profiles"] if p["role"] == "main")
            assert main["stream_uri"] == cameras[address]["rtsp"]["main"]
            assert report["snapshot_uri"] == cameras[address]["snapshot"]["main"]
    # Without unicast targets the multicast-blocked namespace stays unseen; every other camera is found.
    assert sorted(r["address"] for r in multicast_only) == sorted(a for a in cameras if not a.startswith("198.18.3."))
