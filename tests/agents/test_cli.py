"""The command line: --help everywhere, configuration errors, enrol against a fake controller, approve."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from agents.__main__ import format_table
from agents.enrolment import TokenStore
from agents.inventory import Inventory
from protocol.uplink import ENROL_PATH, EnrolRequest, EnrolResponse

REPO = Path(__file__).resolve().parents[2]
TOKEN = "agent-token-" + "k" * 32


def env(state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KETNOI_AGENT_STATE_DIR": str(state_dir),
        "KETNOI_AGENT_SITE__CAMERA_NETWORKS": '["198.18.1.0/24"]',
    }


async def agents_cli(*args: str, state_dir: Path, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agents",
        *args,
        cwd=REPO,
        env=env(state_dir) if environ is None else environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize("command", [[], ["discover"], ["run"], ["enrol"], ["approve"]])
def test_help_everywhere(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agents", *command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and "usage: python -m agents" in result.stdout


async def test_a_bad_configuration_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[site]\ncamera_networks = ["not-a-network"]\n')
    code, _, stderr = await agents_cli("--config", str(path), "discover", state_dir=tmp_path, environ=dict(os.environ))
    assert code == 2
    assert "site.camera_networks.0" in stderr and "not a network" in stderr


async def test_enrol_saves_the_token_and_never_prints_it(tmp_path: Path) -> None:
    seen: list[EnrolRequest] = []

    async def enrol(request: web.Request) -> web.Response:
        seen.append(EnrolRequest.model_validate_json(await request.read()))
        answer = EnrolResponse(agent_id="a-1", site_id="s-1", site_name="Mầm non Hoa Sen", token=TOKEN)
        return web.Response(text=answer.model_dump_json(), content_type="application/json")

    app = web.Application()
    app.router.add_post(ENROL_PATH, enrol)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        code, stdout, stderr = await agents_cli(
            "enrol", "--controller", f"http://127.0.0.1:{port}", "--code", "ABCD-1234", state_dir=tmp_path
        )
    finally:
        await runner.cleanup()
    assert code == 0, stderr
    assert "a-1" in stdout and TOKEN not in stdout + stderr
    assert [r.code for r in seen] == ["ABCD-1234"]
    stored = TokenStore(tmp_path).load()
    assert stored is not None and stored.token == TOKEN and stored.controller_url == f"http://127.0.0.1:{port}"


async def test_enrol_with_no_controller_fails_clearly(tmp_path: Path) -> None:
    code, _, stderr = await agents_cli(
        "enrol", "--controller", "http://127.0.0.1:9", "--code", "ABCD-1234", state_dir=tmp_path
    )
    assert code == 1 and "cannot reach the controller" in stderr


async def test_approve_is_remembered(tmp_path: Path) -> None:
    code, stdout, _ = await agents_cli("approve", "urn:uuid:pending-one", state_dir=tmp_path)
    assert code == 0 and "approved" in stdout
    async with await Inventory.open(tmp_path) as inventory:
        assert inventory.approved == {"urn:uuid:pending-one"}


def test_an_empty_table() -> None:
    assert format_table([]).splitlines()[-1] == "0 device(s)"


async def test_discover_without_a_usable_state_dir_still_answers(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, stdout, stderr = await agents_cli("discover", "--no-multicast", "--wait", "0.1", state_dir=blocker / "state")
    assert code == 0, stderr
    assert stdout.strip().endswith("0 device(s)") and "cannot open the inventory" in stderr


async def test_run_with_a_busy_health_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        environ = {**env(tmp_path), "KETNOI_AGENT_HEALTH_PORT": str(port), "KETNOI_AGENT_SITE__MULTICAST": "false"}
        code, _, stderr = await agents_cli("run", state_dir=tmp_path, environ=environ)
    assert code == 2 and f"cannot serve /healthz on 127.0.0.1:{port}" in stderr
