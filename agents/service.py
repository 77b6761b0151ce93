"""The long-running edge agent: periodic discovery feeding the inventory, the uplink, and a local /healthz.

`Agent.run()` owns every task it starts (a TaskGroup: discovery loop, uplink, health server) and returns
after `stop()`; without a controller (not enrolled, or unreachable) discovery and the inventory keep working.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from aiohttp import web

from agents.config import AgentConfig
from agents.discovery.credentials import CredentialBook
from agents.discovery.scanner import Scanner, ScanResult
from agents.health.monitor import ImageHealth
from agents.health.routes import SnapshotRoutes
from agents.inventory import Inventory
from agents.live.metrics import LiveCollector
from agents.metrics import AgentMetrics
from agents.publisher import Publisher
from agents.recording.runtime import Recording
from agents.recording.token import load_or_create_token
from agents.storage.retention import Retention
from agents.storage.routes import HoldRoutes
from agents.uplink import Uplink
from common.backoff import Backoff
from common.clock import Clock, SystemClock
from protocol.camera import CameraReport
from protocol.uplink import PublishState
from rtc.aiortc_adapter import LoopbackCandidates, set_loopback_candidates

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
SNAPSHOT_DIR = "snapshots"
"""Under the state directory: each camera's latest sampled keyframe as a JPEG."""


class HealthPortError(OSError):
    """The local health endpoint cannot listen where the configuration says."""


class Agent:
    """Discovery every `rediscovery_interval_s` (or at once after an approval), an inventory, an optional uplink."""

    def __init__(
        self,
        config: AgentConfig,
        credentials: CredentialBook,
        inventory: Inventory,
        *,
        clock: Clock | None = None,
        token: str | None = None,
        controller_url: str | None = None,
        hostname: str = "agent",
    ) -> None:
        self.config = config
        self.inventory = inventory
        self._clock: Clock = clock or SystemClock()
        self._scanner = Scanner(config, credentials, self._clock)
        self._token = token
        self._controller_url = controller_url or config.controller_url
        self._hostname = hostname
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._backoff = Backoff(base=2.0, cap=config.rediscovery_interval_s)
        self.passes = 0
        self.last_pass: ScanResult | None = None
        self.last_pass_at: float | None = None
        self.health_port: int | None = None
        self.local_app: web.Application | None = None
        """The local app (/healthz, /metrics, /api/...) once serving; tests list its routes."""
        self.uplink: Uplink | None = None
        self.recording = Recording(config, credentials, clock=self._clock)
        self.image_health = ImageHealth(config.health, config.state_dir / SNAPSHOT_DIR, clock=self._clock)
        self.recording.on_keyframe = self.image_health.on_keyframe
        self.retention: Retention | None = None
        self._api_token: str | None = None
        self.metrics = AgentMetrics(
            recorder=self.recording.stats, health=self.image_health.figures, clock=self._clock, version=VERSION
        )
        if config.live.loopback_candidates:
            set_loopback_candidates(LoopbackCandidates.ONLY)
        self.publisher = Publisher(
            config.live, inventory.snapshot, credentials.for_device, self._send_live_state, clock=self._clock
        )
        self.metrics.registry.register(LiveCollector(self.publisher))
        self.started = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def rediscover(self) -> None:
        """Run the next pass now rather than at the end of the interval."""
        self._wake.set()

    async def approve(self, endpoint_ref: str) -> None:
        """A technician approved a pending device: remember it and interrogate it in the next pass, now."""
        if await self.inventory.approve(endpoint_ref):
            self.rediscover()

    async def run(self) -> None:
        """Run until `stop()`; the scanner's session is closed on the way out."""
        runner: web.AppRunner | None = None
        try:
            await self.recording.open()
            retention = await self._start_retention()
            runner = await self._start_health()
            async with asyncio.TaskGroup() as tasks:
                discovery = tasks.create_task(self._discovery_loop(), name="discovery")
                uplink = self._start_uplink(tasks)
                tasks.create_task(self.recording.run(self.inventory), name="recording")
                retention_loop = tasks.create_task(retention.run(), name="retention")
                tasks.create_task(self.publisher.run(), name="live")
                self.started.set()
                await self._stop.wait()
                self.publisher.shutdown()
                discovery.cancel()
                retention_loop.cancel()
                if uplink is not None:
                    uplink.cancel()
                self.recording.stop()
        finally:
            if runner is not None:
                await runner.cleanup()
            await self._scanner.close()
            await self.recording.close()
            self.image_health.close()

    async def run_pass(self) -> ScanResult:
        """One discovery pass, recorded in the inventory (changes go to the feed)."""
        known = {r.endpoint_ref for r in self.inventory.snapshot()}

        async def found(report: CameraReport) -> None:
            if report.endpoint_ref not in known:  # a known camera keeps its state until its new report
                await self.inventory.record(report)

        async def reported(report: CameraReport) -> None:
            await self.inventory.record(report)

        result = await self._scanner.scan(approved=self.inventory.approved, on_found=found, on_report=reported)
        await self.inventory.mark_missing({r.endpoint_ref for r in result.reports}, self._clock.now())
        self.passes += 1
        self.last_pass = result
        self.last_pass_at = time.time()
        states = Counter(r.state.value for r in result.reports)
        logger.info(
            "discovery pass %d: %d device(s) in %.2f s: %s",
            self.passes,
            len(result.reports),
            result.seconds,
            dict(states),
        )
        return result

    async def _discovery_loop(self) -> None:
        while True:
            # Cleared before the pass, not after: a wake-up that arrives during a pass (an approval) runs
            # another pass at once instead of waiting a whole interval.
            self._wake.clear()
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = self._backoff.next_delay()
                logger.exception("discovery pass failed; next attempt in %.1f s", delay)
            else:
                self._backoff.reset()
                delay = self.config.rediscovery_interval_s
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _start_uplink(self, tasks: asyncio.TaskGroup) -> asyncio.Task[None] | None:
        if self._token is None or not self._controller_url:
            logger.warning("not enrolled with a controller: discovering and keeping the inventory locally only")
            return None
        uplink = Uplink(
            self._controller_url,
            self._token,
            hostname=self._hostname,
            version=VERSION,
            snapshot=self.inventory.snapshot,
            on_approve=self.approve,
            on_publish=self.publisher.publish,
            on_stop_publishing=self.publisher.stop,
            metrics=self.metrics.exposition,
            clock=self._clock,
            state_dir=self.config.state_dir,
        )
        self.uplink = uplink
        self.inventory.subscribe(uplink.publish)
        return tasks.create_task(uplink.run(), name="uplink")

    def _send_live_state(self, message: PublishState) -> None:
        if self.uplink is not None:
            self.uplink.send_state(message)
        else:
            logger.info("live view %s: %s %s (no uplink to report it)", message.endpoint_ref, message.state,
                        message.reason)  # fmt: skip

    async def _start_retention(self) -> Retention:
        """Retention over the recordings root: its hooks go to the recorder, its figures to /metrics."""
        index = self.recording.index
        if index is None:
            raise RuntimeError("open() the recording before starting retention")
        await asyncio.to_thread(self.recording.root.mkdir, parents=True, exist_ok=True)
        self._api_token = await asyncio.to_thread(
            load_or_create_token, self.config.recording.token_file_for(self.config.state_dir)
        )
        retention = Retention(self.config.retention, self.recording.root, index, clock=self._clock)
        self.recording.before_segment = retention.before_segment
        self.recording.on_write_error = retention.on_write_error
        self.retention = retention
        self.metrics.retention = retention
        return retention

    async def _start_health(self) -> web.AppRunner:
        app = self.local_app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self.metrics.handle)
        self.recording.add_routes(app)
        if self._api_token is not None and self.recording.index is not None:
            HoldRoutes(self.recording.index, self._api_token).add_routes(app)
            SnapshotRoutes(self.image_health, self._api_token).add_routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.health_host, self.config.health_port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.config.health_host}:{self.config.health_port}"
            raise HealthPortError(f"cannot serve /healthz on {where}: {exc.strerror or exc}") from None
        except BaseException:
            await runner.cleanup()
            raise
        addresses = runner.addresses
        self.health_port = int(addresses[0][1]) if addresses else self.config.health_port
        logger.info("health endpoint on http://%s:%s/healthz", self.config.health_host, self.health_port)
        return runner

    async def _healthz(self, request: web.Request) -> web.Response:
        states = Counter(r.state.value for r in self.inventory.snapshot())
        online = None if self.uplink is None else self.uplink.online.is_set()
        body = {
            "status": "ok",
            "version": VERSION,
            "passes": self.passes,
            "last_pass_age_s": None if self.last_pass_at is None else round(time.time() - self.last_pass_at, 1),
            "last_pass_seconds": None if self.last_pass is None else round(self.last_pass.seconds, 3),
            "cameras": dict(states),
            "uplink_online": online,
        }
        return web.json_response(body)
