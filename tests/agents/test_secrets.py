"""No camera password in any log line, in the CLI's output or errors, nor in the inventory: raw or URL-encoded."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest

from agents.discovery.credentials import CredentialBook
from agents.discovery.scanner import Scanner
from common.redact import secret_forms
from tests.agents.cameras import PASSWORD, config, running, spec

FORMS = secret_forms(PASSWORD)
REPO = Path(__file__).resolve().parents[2]


def leaks(text: str | bytes) -> list[str]:
    data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return [form for form in FORMS if form in data]


def test_the_password_has_forms_that_differ() -> None:
    assert PASSWORD in FORMS and len(FORMS) >= 2


async def test_no_password_in_log_records_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = config(tmp_path, ["127.0.1.140-127.0.1.143"], deadline_s=1.0)
    scanner = Scanner(cfg, CredentialBook.from_config(cfg))
    cameras = [
        spec("s-good", "127.0.1.140"),
        spec("s-wrong", "127.0.1.141", password="wrong-" + PASSWORD),
        spec("s-skew", "127.0.1.142", clock_offset_s=1e7),
        spec("s-refuse", "127.0.1.143", refuse_connections=True),
    ]
    try:
        async with running(cameras):
            result = await scanner.scan()
    finally:
        await scanner.close()
    assert len(result.reports) == 4
    assert sum(r.state == "ready" for r in result.reports) == 2
    # caplog sees the records before any handler's filter: the text itself must be clean.
    lines = [record.getMessage() for record in caplog.records]
    assert any("camera" in line for line in lines)
    assert [line for line in lines if leaks(line)] == []
    assert [r for r in result.reports if leaks(r.model_dump_json())] == []


async def test_no_password_from_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        '[site]\ncamera_networks = ["127.0.1.0/24"]\nmulticast = false\n'
        'unicast_targets = ["127.0.1.144-127.0.1.146"]\n'
        '[credentials]\npassword_env = "CAMERA_PASSWORD"\n'
        "[timeouts]\nprobe_wait_s = 0.4\ndevice_deadline_s = 1.5\n"
    )
    env = {**os.environ, "CAMERA_PASSWORD": PASSWORD}
    cameras = [
        spec("c-good", "127.0.1.144"),
        spec("c-wrong", "127.0.1.145", password="other-" + PASSWORD),
        spec("c-dtd", "127.0.1.146", hostile_soap="external"),
    ]
    async with running(cameras):
        outputs = []
        for extra in (["--json"], []):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agents",
                "--log-level",
                "DEBUG",
                "--config",
                str(path),
                "discover",
                *extra,
                cwd=REPO,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
            assert process.returncode == 0, stderr.decode()
            outputs.append((stdout, stderr))
    (json_out, json_err), (table_out, table_err) = outputs
    assert b'"state": "ready"' in json_out and b'"state": "auth_failed"' in json_out
    assert b"ready" in table_out and b"auth_failed" in table_out and b"3 device(s)" in table_out
    assert b"DEBUG" in json_err
    for blob in (json_out, json_err, table_out, table_err):
        assert leaks(blob) == []
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir())
    assert b"c-good" in stored or b"127.0.1.144" in stored
    assert leaks(stored) == []
