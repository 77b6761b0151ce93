"""Child processes of the demo: started with their output in a log file, stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class ChildFailed(Exception):
    """A child exited or did not become ready; the message names it and points at its log."""


class Child:
    """One part of the stack (`python -m PART ...`), its stderr in `<logs>/<name>.log`."""

    def __init__(self, name: str, args: list[str], *, logs: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = [sys.executable, "-m", *args]
        self.log_path = logs / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *, capture_stdout: bool = False) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = await asyncio.to_thread(self.log_path.open, "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if capture_stdout else log,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )
        finally:
            log.close()

    async def json_lines_until(self, key: str, timeout: float) -> list[dict[str, Any]]:  # noqa: ASYNC109
        """The JSON objects the child prints on stdout up to (not including) the one that has `key`."""
        assert self.process is not None and self.process.stdout is not None
        seen: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        raise ChildFailed(f"{self.name} exited before it was ready; see {self.log_path}")
                    try:
                        item = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(item, dict):
                        if key in item:
                            return seen
                        seen.append(item)
        except TimeoutError:
            raise ChildFailed(f"{self.name} was not ready within {timeout:.0f} s; see {self.log_path}") from None

    def exited(self) -> int | None:
        return None if self.process is None else self.process.returncode

    async def stop(self, grace: float = 10.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            logger.warning("demo: %s did not stop within %.0f s; killing it", self.name, grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def run_once(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 60) -> str:  # noqa: ASYNC109
    """Run `python -m ARGS` to completion and return its stdout; ChildFailed with its stderr if it fails."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ChildFailed(f"`python -m {' '.join(args[:2])}` did not finish within {timeout:.0f} s") from None
    if process.returncode != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise ChildFailed(f"`python -m {' '.join(args[:2])}` failed: {' / '.join(detail)}")
    return out.decode("utf-8")
