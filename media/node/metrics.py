"""The media node's Prometheus metrics (`ketnoi_media_*`): its own registry, figures read at scrape time.

Relays, viewers, publishers and the byte, frame and keyframe-request totals come from the extensions' `load()`
when Prometheus scrapes, so nothing is counted twice. What only the node core sees (token refusals, sessions
refused for capacity, control requests) are counters kept here. Labels come from fixed sets: `endpoint` (whip,
whep, meeting) and `reason` (the `TokenRefused` reasons plus missing, incomplete and rate_limited). Never a
room, a token or an address.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from media.node.extension import ExtensionLoad
from rtc.retransmit_gate import TOTALS as RETRANSMISSIONS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "ketnoi_media"
ENDPOINTS = ("whip", "whep", "meeting")
REFUSAL_REASONS = (
    "missing",
    "tampered",
    "expired",
    "not_yet_valid",
    "wrong_node",
    "wrong_kind",
    "wrong_room",
    "replayed",
    "incomplete",
    "rate_limited",
)


class _LoadCollector(Collector):
    def __init__(self, load: Callable[[], ExtensionLoad], started: float) -> None:
        self._load = load
        self._started = started

    def collect(self) -> Iterable[Metric]:
        load = self._load()
        gauges = (
            ("relays", "camera relays open", load.relays),
            ("rooms", "meeting rooms open", load.rooms),
            ("publishers", "incoming streams (camera publications and meeting publishers)", load.publishers),
            ("viewers", "outgoing peer connections (camera viewers and meeting participants)", load.subscribers),
            ("streams_out", "forwarded media streams going out", load.streams_out),
            ("view_sessions", "live-view sessions playing", len(load.view_sessions)),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)
        counters = (
            ("bytes_in", "media bytes received from publishers", load.bytes_in),
            ("bytes_out", "media bytes sent to viewers and participants", load.bytes_out),
            ("frames_in", "encoded frames received from publishers", load.frames_in),
            ("frames_out", "encoded frames sent (one per subscriber)", load.frames_out),
            ("keyframe_requests", "keyframe requests sent to publishers", load.keyframe_requests),
            ("retransmitted_packets", "packets sent again at a subscriber's NACK", RETRANSMISSIONS.resent),
            (
                "retransmissions_refused",
                "NACKed packets not sent again: already resent within a round trip, resent enough, or over the "
                "retransmission budget (half the stream's rate)",
                RETRANSMISSIONS.refused,
            ),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)
        yield GaugeMetricFamily(f"{PREFIX}_start_time_seconds", "when the node started", value=self._started)


class NodeMetrics:
    """The registry; `refused()` and friends count what the core sees; `render()` for /metrics."""

    def __init__(self, load: Callable[[], ExtensionLoad]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.refusals = Counter(
            f"{PREFIX}_token_refusals",
            "requests refused for their token (or for their rate), by endpoint and reason",
            ["endpoint", "reason"],
            registry=self.registry,
        )
        for endpoint in ENDPOINTS:
            for reason in REFUSAL_REASONS:
                self.refusals.labels(endpoint, reason)
        self.sessions = Counter(
            f"{PREFIX}_sessions",
            "WHIP and WHEP sessions opened",
            ["endpoint"],
            registry=self.registry,
        )
        self.full = Counter(
            f"{PREFIX}_capacity_refusals",
            "sessions refused because the node or the relay is full",
            registry=self.registry,
        )
        self.control_closed = Counter(
            f"{PREFIX}_control_closed", "sessions and rooms closed at the controller's request", registry=self.registry
        )
        self.reports = Counter(
            f"{PREFIX}_reports", "load reports sent to the controller, by outcome", ["outcome"], registry=self.registry
        )
        for endpoint in ("whip", "whep"):
            self.sessions.labels(endpoint)
        for outcome in ("ok", "failed"):
            self.reports.labels(outcome)
        self.registry.register(_LoadCollector(load, time.time()))

    def refused(self, endpoint: str, reason: str) -> None:
        self.refusals.labels(endpoint, reason if reason in REFUSAL_REASONS else "tampered").inc()

    def refusal_count(self, endpoint: str, reason: str) -> float:
        """The current value of one refusal counter (tests and the report read it)."""
        value = self.registry.get_sample_value(
            f"{PREFIX}_token_refusals_total", {"endpoint": endpoint, "reason": reason}
        )
        return value or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)
