"""`python -m simulator`: starts cameras, prints them for a parent process, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator.fleet import FleetConfig, parse_quirk

PASSWORD = "cli-Secret-9876"
REPO = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KETNOI_SIM_")}
    return {**base, **extra}


async def read_until_ready(proc: asyncio.subprocess.Process, deadline_s: float = 20.0) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    deadline = time.monotonic() + deadline_s
    cameras: list[dict[str, Any]] = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), max(0.01, deadline - time.monotonic()))
        assert line, "the simulator exited before it was ready"
        record = json.loads(line)
        if record == {"ready": True}:
            return cameras
        cameras.append(record)


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    first = f"127.{random.randint(100, 199)}.{random.randint(0, 255)}.10"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "--cameras", "3", "--first-host", first, "--json",
        "--quirk", "1:clock_offset_s=1e7", "--quirk", "2:no_auth=true", "--log-level", "debug",
        cwd=REPO, env=env(KETNOI_SIM_PASSWORD=PASSWORD),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield proc, first
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_starts_cameras_prints_them_and_stops_on_sigterm(
    simulator: tuple[asyncio.subprocess.Process, str],
) -> None:
    proc, first = simulator
    cameras = await read_until_ready(proc)
    prefix = first.rsplit(".", 1)[0]
    assert [c["name"] for c in cameras] == ["cam0", "cam1", "cam2"]
    assert [c["host"] for c in cameras] == [f"{prefix}.10", f"{prefix}.11", f"{prefix}.12"]
    assert len({c["endpoint_ref"] for c in cameras}) == 3
    for camera in cameras:
        assert camera["endpoint_ref"].startswith("urn:uuid:")
        assert camera["device_xaddr"] == f"http://{camera['host']}:8080/onvif/device_service"
        assert camera["rtsp"] == {
            "main": f"rtsp://{camera['host']}:8554/main",
            "sub": f"rtsp://{camera['host']}:8554/sub",
        }
        assert PASSWORD not in json.dumps(camera)

    # The cameras are real peers: the no-auth one serves its snapshot to anyone, the others ask for credentials.
    async with aiohttp.ClientSession() as session:
        async with session.get(cameras[2]["snapshot"]["main"]) as response:
            assert response.status == 200 and (await response.read())[:2] == b"\xff\xd8"
        async with session.get(cameras[0]["snapshot"]["main"]) as response:
            assert response.status == 401
        basic = aiohttp.encode_basic_auth("admin", PASSWORD)
        async with session.get(cameras[0]["snapshot"]["main"], headers={"Authorization": basic}) as response:
            assert response.status == 200

    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None and proc.stdout is not None
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, stderr.decode()
    assert PASSWORD.encode() not in stdout + stderr  # debug logging on, and still no password
    assert b"DEBUG" in stderr


async def test_cli_help_and_clear_errors() -> None:
    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "simulator", *args], cwd=REPO, env=env(**extra),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    results = await asyncio.gather(
        asyncio.to_thread(run, "--help"),
        asyncio.to_thread(run, "--cameras", "2"),
        asyncio.to_thread(run, "--cameras", "0", "--first-host", "nowhere", "--no-auth"),
        asyncio.to_thread(run, "--cameras", "2", "--quirk", "5:no_auth=true", KETNOI_SIM_PASSWORD=PASSWORD),
        asyncio.to_thread(run, "--password-file", "/nonexistent/pw"),
        asyncio.to_thread(run, "--no-auth", "--first-host", "198.18.255.77", "--http-port", "18080"),
    )
    help_, no_password, bad_values, bad_quirk, missing_file, absent_address = results
    assert help_.returncode == 0 and "--cameras" in help_.stdout and "--quirk" in help_.stdout
    assert no_password.returncode == 2 and "KETNOI_SIM_PASSWORD" in no_password.stderr
    assert bad_values.returncode == 2
    assert "--cameras: Input should be greater than or equal to 1" in bad_values.stderr
    assert "--first-host:" in bad_values.stderr
    assert bad_quirk.returncode == 2 and "numbered 0 to 1" in bad_quirk.stderr
    assert missing_file.returncode == 2 and "/nonexistent/pw" in missing_file.stderr
    assert absent_address.returncode == 1 and "add the address to an interface" in absent_address.stderr
    for result in results:
        assert "Traceback" not in result.stderr


def test_quirk_values_take_the_dataclass_types(tmp_path: Path) -> None:
    assert parse_quirk("3:clock_offset_s=1e7") == (3, "clock_offset_s", 1e7)
    assert parse_quirk("0:no_auth=true") == (0, "no_auth", True)
    assert parse_quirk("0:trickle_bytes_per_s=200") == (0, "trickle_bytes_per_s", 200)
    assert parse_quirk("0:stall_after_s=none") == (0, "stall_after_s", None)
    assert parse_quirk("1:hostile_soap=huge") == (1, "hostile_soap", "huge")
    for bad in ("x:no_auth=1", "0:no_auth", "0:nope=1", "0:trickle_bytes_per_s=fast", "0:hostile_soap=worse"):
        with pytest.raises(ValueError, match="quirk"):
            parse_quirk(bad)
    config = FleetConfig(cameras=2, quirks=("1:clock_offset_s=-5", "1:no_auth=yes"), name_prefix="k")
    specs = config.specs("pw-long-enough")
    assert [s.name for s in specs] == ["k0", "k1"]
    assert specs[0].quirks.clock_offset_s == 0 and not specs[0].quirks.no_auth
    assert specs[1].quirks.clock_offset_s == -5 and specs[1].quirks.no_auth
    assert [s.host for s in specs] == ["127.0.1.1", "127.0.1.2"]


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.__main__ import UsageError, build_parser, load

    for name in [k for k in os.environ if k.startswith("KETNOI_SIM_")]:
        monkeypatch.delenv(name)
    config_file = tmp_path / "sim.toml"
    config_file.write_text('cameras = 4\nname_prefix = "file"\nhttp_port = 9000\nquirks = ["3:no_auth=true"]\n')
    monkeypatch.setenv("KETNOI_SIM_NAME_PREFIX", "env")
    monkeypatch.setenv("KETNOI_SIM_PASSWORD", PASSWORD)
    config, specs = load(build_parser().parse_args(["--config", str(config_file), "--http-port", "9100"]))
    assert (config.cameras, config.name_prefix, config.http_port) == (4, "env", 9100)
    assert [s.name for s in specs] == ["env0", "env1", "env2", "env3"]
    assert {s.password for s in specs} == {PASSWORD} and specs[3].quirks.no_auth

    password_file = tmp_path / "pw"
    password_file.write_text("from-file-123\n")
    _, specs = load(build_parser().parse_args(["--password-file", str(password_file)]))
    assert specs[0].password == "from-file-123"

    monkeypatch.setenv("KETNOI_SIM_CAMERAS", "many")
    with pytest.raises(UsageError, match="KETNOI_SIM_CAMERAS"):
        load(build_parser().parse_args([]))
