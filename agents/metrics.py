"""The agent's Prometheus metrics: a registry of its own and a collector that reads the figures at scrape time.

Nothing is counted twice: the recorder (`stats()`), retention (`Retention.stats`) and image health
(`ImageHealth.figures()`) keep their own figures, and `AgentCollector` turns them into metric families when
Prometheus scrapes. Labels come from fixed sets only: `camera` is the uuid of the camera's endpoint reference
(never a URL, never a name a device chose), `state`, `reason` and `kind` are enumerations. Requests to paths the
agent does not serve create no series (nothing is labelled by path).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.health.monitor import ImageFigures
from agents.recording.stats import RecorderState
from agents.storage.retention import DELETE_REASONS, WRITE_ERRORS, Retention
from common.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "ketnoi_agent"
RECORDER_STATES = tuple(state.value for state in RecorderState)
"""The `state` label's fixed set."""
REFRESH_TIMEOUT_S = 5.0
_CAMERA_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(\.sub)?")
_HASHED = re.compile(r"id-[0-9a-f]{16}(\.sub)?")


class RecorderFigures(Protocol):
    """What the collector reads from one camera's agents.recording.stats.RecorderStats."""

    @property
    def state(self) -> str: ...
    @property
    def frames_total(self) -> float: ...
    @property
    def bytes_total(self) -> float: ...
    @property
    def keyframes_total(self) -> float: ...
    @property
    def last_packet_monotonic(self) -> float | None: ...
    @property
    def fps(self) -> float | None: ...
    @property
    def bitrate_bps(self) -> float | None: ...
    @property
    def keyframe_interval_s(self) -> float | None: ...
    @property
    def reconnects_total(self) -> float: ...
    @property
    def stalls_total(self) -> float: ...
    @property
    def gaps_total(self) -> float: ...
    @property
    def gap_seconds_total(self) -> float: ...
    @property
    def segments_total(self) -> float: ...
    @property
    def write_errors_total(self) -> float: ...
    @property
    def recording_lag_s(self) -> float | None: ...


RecorderSource = Callable[[], Mapping[str, RecorderFigures]]
HealthSource = Callable[[], Mapping[str, ImageFigures]]


def camera_label(camera: str) -> str:
    """The `camera` label: the recorder's camera id (the uuid of the endpoint reference, lower case, `.sub` for
    a sub-stream); an endpoint reference becomes its uuid; anything else a hash (never a URL or a name)."""
    text = camera.removeprefix("urn:uuid:")
    if _CAMERA_ID.fullmatch(text.lower()) or _HASHED.fullmatch(text):
        return text.lower()
    return "id-" + hashlib.sha256(camera.encode("utf-8")).hexdigest()[:16]


class AgentCollector(Collector):
    """Reads the recorder's, retention's and image health's figures at scrape time."""

    def __init__(
        self,
        *,
        recorder: RecorderSource | None = None,
        retention: Callable[[], Retention | None] | None = None,
        health: HealthSource | None = None,
        clock: Clock | None = None,
        version: str = "",
    ) -> None:
        self._recorder = recorder
        self._retention = retention
        self._health = health
        self._clock: Clock = clock or SystemClock()
        self._version = version

    def collect(self) -> Iterable[Metric]:
        if self._version:
            yield InfoMetricFamily(f"{PREFIX}_build", "The agent's version", value={"version": self._version})
        yield from self._recorder_families()
        yield from self._health_families()
        yield from self._storage_families()

    # ------------------------------------------------------------------------------------------------------------

    def _recorder_families(self) -> Iterable[Metric]:
        stats = dict(self._recorder()) if self._recorder is not None else {}
        now = self._clock.monotonic()
        p = f"{PREFIX}_camera"
        up = GaugeMetricFamily(f"{p}_up", "1 while the camera is being recorded, else 0", labels=["camera"])
        state = GaugeMetricFamily(f"{p}_state", "Recorder state (1: current)", labels=["camera", "state"])
        counters = {
            "frames_total": CounterMetricFamily(f"{p}_frames", "Frames received", labels=["camera"]),
            "bytes_total": CounterMetricFamily(f"{p}_received_bytes", "Media bytes received", labels=["camera"]),
            "keyframes_total": CounterMetricFamily(f"{p}_keyframes", "Keyframes received", labels=["camera"]),
            "reconnects_total": CounterMetricFamily(f"{p}_reconnects", "Stream reconnections", labels=["camera"]),
            "stalls_total": CounterMetricFamily(
                f"{p}_stalls", "Connections that stayed open without packets", labels=["camera"]
            ),
            "gaps_total": CounterMetricFamily(f"{p}_gaps", "Gaps in the recording", labels=["camera"]),
            "gap_seconds_total": CounterMetricFamily(
                f"{p}_gap_seconds", "Seconds not recorded, in gaps", labels=["camera"]
            ),
            "segments_total": CounterMetricFamily(f"{p}_segments_written", "Segments finished", labels=["camera"]),
            "write_errors_total": CounterMetricFamily(
                f"{p}_write_errors", "Writes of this camera's recording that failed", labels=["camera"]
            ),
        }
        gauges = {
            "fps": GaugeMetricFamily(f"{p}_frames_per_second", "Frame rate received, recent", labels=["camera"]),
            "bitrate_bps": GaugeMetricFamily(
                f"{p}_receive_rate_bytes_per_second", "Media bytes received per second, recent", labels=["camera"]
            ),
            "keyframe_interval_s": GaugeMetricFamily(
                f"{p}_keyframe_interval_seconds", "Seconds between keyframes, recent", labels=["camera"]
            ),
            "recording_lag_s": GaugeMetricFamily(
                f"{p}_recording_lag_seconds", "How far the written recording is behind the stream", labels=["camera"]
            ),
        }
        age = GaugeMetricFamily(
            f"{p}_last_packet_age_seconds", "Seconds since the last packet was received", labels=["camera"]
        )
        for camera, s in sorted(stats.items()):
            label = camera_label(camera)
            current = str(s.state)
            up.add_metric([label], 1.0 if current == RecorderState.RECORDING else 0.0)
            for value in RECORDER_STATES:
                state.add_metric([label, value], 1.0 if current == value else 0.0)
            for attribute, family in counters.items():
                family.add_metric([label], float(getattr(s, attribute)))
            for attribute, gauge in gauges.items():
                figure = getattr(s, attribute)
                if figure is not None:
                    gauge.add_metric([label], float(figure) / (8.0 if attribute == "bitrate_bps" else 1.0))
            if s.last_packet_monotonic is not None:
                age.add_metric([label], max(0.0, now - s.last_packet_monotonic))
        yield up
        yield state
        yield from counters.values()
        yield from gauges.values()
        yield age

    def _health_families(self) -> Iterable[Metric]:
        figures = dict(self._health()) if self._health is not None else {}
        p = f"{PREFIX}_camera_image"
        brightness = GaugeMetricFamily(f"{p}_brightness_ratio", "Mean luma of the last sample, 0-1", labels=["camera"])
        contrast = GaugeMetricFamily(f"{p}_contrast_ratio", "Luma standard deviation, 0-1", labels=["camera"])
        sharpness = GaugeMetricFamily(
            f"{p}_sharpness", "Variance of the Laplacian of the last sample (640 px wide)", labels=["camera"]
        )
        change = GaugeMetricFamily(f"{p}_change_ratio", "Difference from the previous sample, 0-1", labels=["camera"])
        flags = {
            "dark": GaugeMetricFamily(f"{p}_dark", "1 if the picture is dark or covered", labels=["camera"]),
            "blurred": GaugeMetricFamily(f"{p}_blurred", "1 if the picture is blurred", labels=["camera"]),
            "frozen": GaugeMetricFamily(f"{p}_frozen", "1 if unchanged for N samples", labels=["camera"]),
        }
        samples = CounterMetricFamily(f"{p}_samples", "Keyframes sampled for image health", labels=["camera"])
        errors = CounterMetricFamily(f"{p}_sample_errors", "Sampled keyframes that did not decode", labels=["camera"])
        age = GaugeMetricFamily(f"{p}_sample_age_seconds", "Seconds since the last sample", labels=["camera"])
        now = self._clock.now()
        for camera, f in sorted(figures.items()):
            label = camera_label(camera)
            for family, value in ((brightness, f.brightness), (contrast, f.contrast), (sharpness, f.sharpness)):
                if value is not None:
                    family.add_metric([label], value)
            if f.change is not None:
                change.add_metric([label], f.change)
            if f.samples_total:
                for name, family in flags.items():
                    family.add_metric([label], 1.0 if getattr(f, name) else 0.0)
            samples.add_metric([label], f.samples_total)
            errors.add_metric([label], f.errors_total)
            if f.sampled_at is not None:
                age.add_metric([label], max(0.0, (now - f.sampled_at).total_seconds()))
        yield from (brightness, contrast, sharpness, change, *flags.values(), samples, errors, age)

    def _storage_families(self) -> Iterable[Metric]:
        retention = self._retention() if self._retention is not None else None
        if retention is None:
            return
        stats = retention.stats
        p = f"{PREFIX}_recordings"
        yield GaugeMetricFamily(f"{p}_volume_size_bytes", "Size of the recordings volume", value=stats.total_bytes)
        yield GaugeMetricFamily(
            f"{p}_volume_free_bytes", "Bytes free on the recordings volume (for the agent)", value=stats.free_bytes
        )
        yield GaugeMetricFamily(f"{p}_volume_floor_bytes", "The free-space floor kept", value=stats.floor_bytes)
        yield GaugeMetricFamily(
            f"{p}_floor_breached", "1 while free space is under the floor", value=1.0 if stats.floor_breached else 0.0
        )
        yield GaugeMetricFamily(f"{p}_bytes", "Bytes used by indexed recordings", value=stats.recordings_bytes)
        oldest = retention.oldest_age_s()
        if oldest is not None:
            yield GaugeMetricFamily(f"{p}_oldest_age_seconds", "Age of the oldest recording kept", value=oldest)
        deleted = CounterMetricFamily(f"{p}_deleted_segments", "Segments deleted by retention", labels=["reason"])
        deleted_bytes = CounterMetricFamily(f"{p}_deleted_bytes", "Bytes deleted by retention", labels=["reason"])
        for reason in DELETE_REASONS:
            deleted.add_metric([reason], stats.deleted[reason])
            deleted_bytes.add_metric([reason], stats.deleted_bytes[reason])
        yield deleted
        yield deleted_bytes
        errors = CounterMetricFamily(f"{p}_write_errors", "Recording writes that failed, by kind", labels=["kind"])
        for kind in WRITE_ERRORS:
            errors.add_metric([kind], stats.write_errors[kind])
        yield errors
        yield CounterMetricFamily(
            f"{p}_floor_unreachable",
            "Times the floor could not be held (only held segments or other files left)",
            value=stats.floor_unreachable_total,
        )
        yield CounterMetricFamily(
            f"{p}_delete_errors", "Segments retention could not delete", value=stats.delete_errors_total
        )
        yield CounterMetricFamily(f"{p}_check_errors", "Free-space checks that failed", value=stats.check_errors_total)


class AgentMetrics:
    """The agent's registry, and the /metrics handler (storage figures refreshed first, within a bound)."""

    def __init__(
        self,
        *,
        recorder: RecorderSource | None = None,
        retention: Retention | None = None,
        health: HealthSource | None = None,
        clock: Clock | None = None,
        version: str = "",
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.recorder = recorder
        self.retention = retention
        self.health = health
        """The sources, settable after construction (the agent opens the index, then makes its retention)."""
        self.registry.register(
            AgentCollector(
                recorder=lambda: self.recorder() if self.recorder is not None else {},
                retention=lambda: self.retention,
                health=lambda: self.health() if self.health is not None else {},
                clock=clock,
                version=version,
            )
        )
        self._last_refresh = 0.0

    async def refresh(self) -> None:
        """Read the volume and the index now (at most once a second; bounded; the last figures on failure)."""
        retention = self.retention
        if retention is None or time.monotonic() - self._last_refresh < 1.0:
            return
        self._last_refresh = time.monotonic()
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_S):
                await retention.refresh()
        except Exception as exc:  # a scrape must answer: the last figures are better than none
            logger.warning("metrics: cannot read the recordings volume or index (%r); serving the last figures", exc)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def exposition(self) -> bytes:
        """What /metrics serves (also sent over the uplink when the controller asks for it)."""
        await self.refresh()
        return self.render()

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.exposition(), headers={"Content-Type": CONTENT_TYPE})
