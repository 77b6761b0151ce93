"""The controller's Prometheus metrics, in a registry of its own; every label comes from a fixed set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import Agent, Camera
from protocol.camera import CameraState

MESSAGE_TYPES = ("hello", "camera_update", "status", "publish_state", "invalid")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.agents = Gauge(
            "ketnoi_agents", "Enrolled, unrevoked agents by link state", ["state"], registry=self.registry
        )
        self.cameras = Gauge(
            "ketnoi_cameras", "Cameras reported by agents, by state", ["state"], registry=self.registry
        )
        self.messages = Counter(
            "ketnoi_uplink_messages", "Uplink messages received, by type", ["type"], registry=self.registry
        )
        self.connections = Counter(
            "ketnoi_uplink_connections", "Uplink connection attempts, by result", ["result"], registry=self.registry
        )
        for kind in MESSAGE_TYPES:
            self.messages.labels(kind)
        for result in ("accepted", "refused"):
            self.connections.labels(result)

    def message(self, kind: str) -> None:
        self.messages.labels(kind if kind in MESSAGE_TYPES else "invalid").inc()

    async def refresh(self, session: AsyncSession) -> None:
        """Set the gauges from the database (at scrape time)."""
        online = dict(
            (
                await session.execute(
                    select(Agent.online, func.count(Agent.id)).where(Agent.revoked_at.is_(None)).group_by(Agent.online)
                )
            ).all()
        )
        self.agents.labels("online").set(online.get(True, 0))
        self.agents.labels("offline").set(online.get(False, 0))
        by_state = dict(
            (
                await session.execute(
                    select(Camera.state, func.count(Camera.id)).where(Camera.gone_at.is_(None)).group_by(Camera.state)
                )
            ).all()
        )
        for camera_state in CameraState:
            self.cameras.labels(camera_state.value).set(by_state.get(camera_state, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
