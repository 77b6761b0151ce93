"""Live-view and media-node figures for the controller's /metrics (same registry; labels from fixed sets only:
reason codes, never ids or names). "Parents reached" for the Department's reports is `ketnoi_live_views_started`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from controller.live.authorize import Reason

END_REASONS = (
    *(r.value for r in Reason),
    "viewer_left", "never_played", "replaced", "stopped_by_viewer", "media_node_lost", "other",
)  # fmt: skip


class LiveMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter("ketnoi_live_views_started", "Live views started", registry=registry)
        self.refused = Counter("ketnoi_live_refusals", "Live view requests refused, by reason", ["reason"],
                               registry=registry)  # fmt: skip
        self.ended = Counter("ketnoi_live_views_ended", "Live views ended, by reason", ["reason"], registry=registry)
        self.open = Gauge("ketnoi_live_views_open", "Live views open (at the watcher's last pass)", registry=registry)
        self.nodes = Gauge("ketnoi_media_nodes", "Media nodes known, by freshness", ["state"], registry=registry)
        self.publications = Gauge(
            "ketnoi_live_publications", "Camera publications asked of agents, by state", ["state"], registry=registry
        )
        for reason in Reason:
            self.refused.labels(reason.value)
        for name in END_REASONS:
            self.ended.labels(name)
        for state in ("fresh", "stale"):
            self.nodes.labels(state)
        for state in ("requested", "publishing", "failed", "stopped"):
            self.publications.labels(state)

    def end(self, reason: str) -> None:
        self.ended.labels(reason if reason in END_REASONS else "other").inc()
