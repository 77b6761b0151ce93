"""The load reporter: a `NodeReport` to the controller every interval, whether or not it is there.

The controller places relays and rooms on nodes that report in time and ends the audit record of a view session
that a node stops listing, so the report lists every view session playing. An absent or failing controller is
normal (it restarts, it is upgraded): failures back off with jitter (`common/backoff.py`) up to three
intervals, so a returning controller hears from every node soon, and never stop the node. The controller's reply
may change the interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp
from pydantic import ValidationError

from common.backoff import Backoff
from common.clock import Clock
from media.node.config import NodeConfig
from media.node.extension import ExtensionLoad
from media.node.metrics import NodeMetrics
from protocol.media import NODE_REPORT_PATH, NodeLoad, NodeReport, NodeReportReply, node_bearer

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
REQUEST_TIMEOUT_S = 5.0


class CpuMeter:
    """The process's CPU use in cores since the last reading."""

    def __init__(self) -> None:
        self._at = time.monotonic()
        self._cpu = time.process_time()

    def read(self) -> float:
        now, cpu = time.monotonic(), time.process_time()
        elapsed = now - self._at
        used = (cpu - self._cpu) / elapsed if elapsed > 0 else 0.0
        self._at, self._cpu = now, cpu
        return max(0.0, used)


def build_report(config: NodeConfig, load: ExtensionLoad, cpu: float) -> NodeReport:
    return NodeReport(
        node_id=config.node_id,
        public_url=config.effective_public_url,
        control_url=config.effective_control_url,
        version=VERSION,
        capacity_streams=config.capacity_streams,
        load=NodeLoad(
            rooms=load.rooms,
            relays=load.relays,
            publishers=load.publishers,
            subscribers=load.subscribers,
            streams_out=load.streams_out,
            cpu=round(cpu, 3),
        ),
        view_sessions=sorted(set(load.view_sessions)),
        meeting_rooms=sorted(set(load.meeting_rooms)),
    )


class Reporter:
    def __init__(
        self,
        config: NodeConfig,
        secret: bytes,
        load: Callable[[], ExtensionLoad],
        metrics: NodeMetrics,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._config = config
        self._url = config.controller_url + NODE_REPORT_PATH
        self._auth = f"Bearer {node_bearer(secret)}"
        self._load = load
        self._metrics = metrics
        self._clock = clock
        self.interval_s = config.report_interval_s
        self._backoff = backoff or Backoff(base=config.report_interval_s, cap=config.report_interval_s * 3)
        self._cpu = CpuMeter()
        self.sent = 0
        self.failures = 0
        self.last_report: NodeReport | None = None

    async def report_once(self, http: aiohttp.ClientSession) -> None:
        """Send one report; raises the library's error on failure."""
        report = build_report(self._config, self._load(), self._cpu.read())
        async with http.post(
            self._url,
            data=report.model_dump_json(),
            headers={"Authorization": self._auth, "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        ) as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=response.reason or ""
                )
            body = await response.read()
        self.last_report = report
        try:
            reply = NodeReportReply.model_validate_json(body)
        except ValidationError:
            return
        self.interval_s = min(max(reply.interval_s, 0.5), 300.0)

    async def run(self) -> None:
        """Report until cancelled."""
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    await self.report_once(http)
                except asyncio.CancelledError:
                    raise
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self.failures += 1
                    self._metrics.reports.labels("failed").inc()
                    delay = self._backoff.next_delay()
                    level = logging.DEBUG if self.failures > 1 else logging.WARNING
                    logger.log(level, "report to the controller failed (%s); next in %.1f s", _describe(exc), delay)
                else:
                    self.sent += 1
                    self._metrics.reports.labels("ok").inc()
                    if self.failures:
                        logger.info("reports reach the controller again")
                    self.failures = 0
                    self._backoff.reset()
                    delay = self.interval_s
                await self._clock.sleep(delay)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    return str(exc) or type(exc).__name__
