"""The walking skeleton end to end, through the demo as a newcomer runs it.

`python -m demo` starts the controller, 8 simulated cameras and an agent as separate processes; the agent
enrols with a one-time code, discovers the cameras and reports them over its uplink. Here a technician signs in,
sees the school's agent online and its cameras in their states, approves the camera that is outside the school's
camera networks (the approval travels down the uplink and the agent interrogates it), and no camera password
appears in any page, API answer, metric or log line, raw or URL-encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest

from tests.ports import free_port
from tests.waiting import eventually_true

CAMERAS = 8
# A loopback /24 of its own, so that a demo or another test run on this machine cannot hold the cameras' ports.
NET = f"127.{random.randint(64, 250)}.{random.randint(0, 255)}"
FIRST_HOST = f"{NET}.1"


class Demo:
    def __init__(self, process: asyncio.subprocess.Process, workdir: Path, port: int, output: str) -> None:
        self.process = process
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{port}"
        self.output = output

    def login(self, who: str) -> tuple[str, str]:
        match = re.search(rf"^\s+{who} \(.*?\)\s+(\S+) / (\S+)$", self.output, re.MULTILINE)
        assert match, f"no login for {who} in the demo's output:\n{self.output}"
        return match.group(1), match.group(2)

    @property
    def camera_password(self) -> str:
        match = re.search(r"^\s+camera \(ONVIF, RTSP\)\s+admin / (\S+)$", self.output, re.MULTILINE)
        assert match
        return match.group(1)


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo",
        "--workdir",
        str(tmp_path / "demo"),
        "--port",
        str(port),
        "--agent-port",
        str(free_port()),
        "--first-host",
        FIRST_HOST,
        "--http-port",
        "18080",
        "--rtsp-port",
        "18554",
        "--cameras",
        str(CAMERAS),
        "--media-port",
        str(free_port()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(150):
            while not any("Ctrl-C" in line for line in lines):
                line = (await process.stdout.readline()).decode()
                if not line:
                    assert process.stderr is not None
                    error = (await process.stderr.read()).decode()
                    pytest.fail(f"the demo stopped before it was up:\n{''.join(lines)}\n{error}")
                lines.append(line)
        yield Demo(process, tmp_path / "demo", port, "".join(lines))
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 30)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def signed_in(demo: Demo, who: str) -> aiohttp.ClientSession:
    username, password = demo.login(who)
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(
        f"{demo.url}/signin",
        data={"username": username, "password": password},
        headers={"Origin": demo.url},
        allow_redirects=False,
    ) as response:
        assert response.status in (302, 303)
    return http


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, f"{url}: HTTP {response.status}"
        return await response.json()


@pytest.mark.slow
async def test_technician_sees_the_school_cameras_and_approves_one(demo: Demo) -> None:
    http = await signed_in(demo, "kythuat")
    bodies: list[str] = []
    try:
        units = await get_json(http, f"{demo.url}/api/units")
        school = next(u for u in units["units"] if u["kind"] == "school" and u["school_level"] == "kindergarten")
        agents = (await get_json(http, f"{demo.url}/api/units/{school['id']}/agents"))["agents"]
        assert len(agents) == 1
        assert agents[0]["online"] is True
        agent_id = agents[0]["id"]

        cameras = (await get_json(http, f"{demo.url}/api/agents/{agent_id}/cameras"))["cameras"]
        by_address = {c["address"]: c for c in cameras}
        assert len(by_address) == CAMERAS
        states = sorted(c["state"] for c in cameras)
        assert states == ["auth_failed", "pending_approval"] + ["ready"] * (CAMERAS - 2)
        ready = by_address[f"{NET}.1"]
        assert ready["model"] == "SIM-720"
        assert {(p["width"], p["height"]) for p in ready["profiles"]} == {(1280, 720), (640, 360)}
        assert by_address[f"{NET}.2"]["state"] == "ready"  # its clock is six months off
        assert by_address[f"{NET}.3"]["state"] == "auth_failed"
        pending = by_address[f"{NET}.8"]
        assert pending["state"] == "pending_approval"
        assert pending["profiles"] == []  # never interrogated with the site's credentials

        # The approval goes down the uplink; the agent interrogates the camera and reports it ready.
        session = await get_json(http, f"{demo.url}/api/session")
        async with http.post(
            f"{demo.url}/api/cameras/{pending['id']}/approve",
            headers={"X-CSRF-Token": session["csrf_token"], "Origin": demo.url},
        ) as response:
            assert response.status == 200, await response.text()

        async def approved_camera_ready() -> bool:
            found = (await get_json(http, f"{demo.url}/api/agents/{agent_id}/cameras"))["cameras"]
            camera = next(c for c in found if c["address"] == f"{NET}.8")
            return bool(camera["state"] == "ready" and camera["profiles"])

        await eventually_true(approved_camera_ready, timeout=60)

        for path in ("/", f"/units/{school['id']}", "/api/units", f"/api/agents/{agent_id}/cameras", "/metrics"):
            async with http.get(demo.url + path) as response:
                assert response.status == 200, path
                bodies.append(await response.text())
        assert "Trường Mầm non Hoa Sen" in bodies[0]
        assert "SIM-720" in bodies[1]
    finally:
        await http.close()

    secret = demo.camera_password
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    logs = [p.read_text(errors="replace") for p in (demo.workdir / "logs").glob("*.log")]
    assert len(logs) >= 3
    for text in bodies + logs:
        for form in forms:
            assert form not in text
    assert "rtsp://admin:" not in "".join(bodies + logs)

    # The seeded bookings and roles: each signs in and lands on a page it may see.
    for who, path, expected in (
        ("datlich", "/my/sessions", "Họp giao ban toàn ngành"),
        ("giaovien", "/my/sessions", "Dự giờ lớp Lá 1"),
        ("phuhuynh", "/my/children", "Nguyễn Minh An"),
    ):
        user = await signed_in(demo, who)
        try:
            async with user.get(demo.url + path) as response:
                assert response.status == 200 and expected in await response.text(), who
        finally:
            await user.close()
