"""Live view in the agent's /metrics: publications running, states reported, H.264 bytes sent to media nodes.

A collector of its own (registered on the agent's registry by the service), read at scrape time from the
`Publisher`; the `state` label takes the three `PublishState` values only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from agents.publisher import Publisher

PREFIX = "ketnoi_agent_live"
STATES = ("publishing", "failed", "stopped")


class LiveCollector(Collector):
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def collect(self) -> Iterable[Metric]:
        publisher = self._publisher
        yield GaugeMetricFamily(
            f"{PREFIX}_publications", "cameras being published to media nodes now", value=len(publisher.active())
        )
        states = CounterMetricFamily(
            f"{PREFIX}_states", "live-view states reported to the controller, by state", labels=["state"]
        )
        for state in STATES:
            states.add_metric([state], publisher.states.get(state, 0))
        yield states
        yield CounterMetricFamily(
            f"{PREFIX}_payload_bytes", "H.264 bytes sent to media nodes (before RTP and SRTP)",
            value=publisher.payload_bytes(),
        )  # fmt: skip
