"""Recording inside the agent: the index, the supervisor fed by the inventory, and the local API's routes.

The agent calls, in order: `await open()` (index, API token), `add_routes(app)` on its local aiohttp app (the
health app: one local port for /healthz, /metrics and /api), `run(inventory)` in its task group, `stop()`, and
`await close()` on the way out. Other parts set the hooks (`on_keyframe`, `before_segment`,
`on_write_error`) before `run()`; `stats()` is safe to call at any time.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from aiohttp import web

from agents.config import AgentConfig
from agents.discovery.credentials import CredentialBook
from agents.inventory import Inventory
from agents.recording.api import RecordingApi
from agents.recording.hooks import BeforeSegmentHook, KeyframeHook, WriteErrorHook
from agents.recording.index import DB_FILE, SegmentIndex
from agents.recording.stats import RecorderStats
from agents.recording.supervisor import RecordingSupervisor
from agents.recording.token import load_or_create_token
from common.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

EXPORT_DIR = "exports"


class Recording:
    """See the module docstring."""

    def __init__(self, config: AgentConfig, credentials: CredentialBook, *, clock: Clock | None = None) -> None:
        self.config = config.recording
        self.state_dir = config.state_dir
        self.root: Path = self.config.root_for(config.state_dir)
        self._credentials = credentials
        self._clock: Clock = clock or SystemClock()
        self.on_keyframe: KeyframeHook | None = None
        self.before_segment: BeforeSegmentHook | None = None
        self.on_write_error: WriteErrorHook | None = None
        self.index: SegmentIndex | None = None
        self.supervisor: RecordingSupervisor | None = None
        self.api: RecordingApi | None = None

    def stats(self) -> dict[str, RecorderStats]:
        return {} if self.supervisor is None else self.supervisor.stats()

    async def open(self) -> None:
        """Open the index and read (or create) the API token."""
        self.index = await SegmentIndex.open(self.state_dir / DB_FILE)
        token = await asyncio.to_thread(load_or_create_token, self.config.token_file_for(self.state_dir))
        export_dir = self.state_dir / EXPORT_DIR
        await asyncio.to_thread(shutil.rmtree, export_dir, True)  # clips left by a crash mid-export
        self.api = RecordingApi(self.index, self.root, token, export_dir, self.config)

    def add_routes(self, app: web.Application) -> None:
        if self.api is None:
            raise RuntimeError("open() the recording before mounting its routes")
        self.api.add_routes(app)

    async def run(self, inventory: Inventory) -> None:
        """Record the inventory's ready cameras until `stop()` (or cancellation)."""
        if self.index is None:
            raise RuntimeError("open() the recording before running it")
        supervisor = RecordingSupervisor(
            self.config,
            self.root,
            self.index,
            self._credentials.for_device,
            clock=self._clock,
            on_keyframe=self.on_keyframe,
            before_segment=self.before_segment,
            on_write_error=self.on_write_error,
        )
        self.supervisor = supervisor
        supervisor.sync(inventory.snapshot())
        inventory.subscribe(supervisor.update)
        await supervisor.run()

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()

    async def close(self) -> None:
        if self.index is not None:
            await self.index.close()
            self.index = None
