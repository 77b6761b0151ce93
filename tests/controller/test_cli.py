"""`python -m controller`: the commands the demo script and operators call, with their --json output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.waiting import eventually_sync

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    environ = {**os.environ, "KETNOI_CONTROLLER_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        cwd=ROOT,
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _json(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_commands_make_units_users_and_codes(tmp_path: Path) -> None:
    department = _json(_run(tmp_path, "create-unit", "--name", "Sở GD&ĐT", "--kind", "department", "--json"))
    parent = ["--parent", str(department["id"])]
    district = _json(_run(tmp_path, "create-unit", "--name", "Quận 1", "--kind", "district", *parent, "--json"))
    school_args = [
        "--name",
        "MN Hoa Sen",
        "--kind",
        "school",
        "--level",
        "kindergarten",
        "--parent",
        str(district["id"]),
    ]
    networks = ["--camera-network", "198.18.1.0/24", "198.18.2.0/24"]
    school = _json(_run(tmp_path, "create-unit", *school_args, *networks, "--json"))
    assert school["camera_networks"] == ["198.18.1.0/24", "198.18.2.0/24"]
    admin = _json(_run(tmp_path, "create-admin", "--username", "admin", "--json"))
    assert admin["role"] == "admin" and len(admin["password"]) >= 16
    tech_args = ["--username", "tech", "--role", "district_technician", "--unit", str(district["id"])]
    tech = _json(
        _run(tmp_path, "create-admin", *tech_args, "--password-stdin", "--json", stdin="a long enough password\n")
    )
    assert "password" not in tech
    code = _json(_run(tmp_path, "enrolment-code", "--unit", str(school["id"]), "--json"))
    assert len(code["code"]) == 11 and code["unit_id"] == school["id"]
    assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o777 == 0o600

    refused = _run(tmp_path, "enrolment-code", "--unit", str(district["id"]))
    assert refused.returncode == 1 and "schools only" in refused.stderr
    taken = _run(tmp_path, "create-admin", "--username", "admin")
    assert taken.returncode == 1 and "taken" in taken.stderr and "Traceback" not in taken.stderr


def test_bad_configuration_is_explained(tmp_path: Path) -> None:
    result = _run(tmp_path, "migrate", env={"KETNOI_CONTROLLER_SESSION_IDLE_TIMEOUT_S": "ten"})
    assert result.returncode == 2 and "session_idle_timeout_s" in result.stderr
    missing = _run(tmp_path, "migrate", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    config = tmp_path / "c.toml"
    config.write_text('unknown_key = 1\ndatabase_url = "mysql://x"\n', encoding="utf-8")
    result = _run(tmp_path, "migrate", "--config", str(config))
    assert result.returncode == 2 and "unknown_key" in result.stderr and "database_url" in result.stderr


def test_serve_answers_health(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = {**os.environ, "KETNOI_CONTROLLER_DATA_DIR": str(tmp_path / "data"), "KETNOI_CONTROLLER_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "controller", "serve"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        eventually_sync(healthy, timeout=30)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "Traceback" not in stderr
