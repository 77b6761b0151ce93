"""Storing what an agent reports: its Hello snapshot and its camera updates.

A Hello is the agent's full inventory and replaces the stored camera set idempotently: cameras are upserted by
endpoint_ref; a stored camera missing from the snapshot is kept (with its approval) but marked gone (`gone_at`)
and left out of listings until the agent reports it again. The snapshot reflects every update up to `hello.seq`,
so `last_seq` becomes `hello.seq`: older updates replayed after the Hello are acknowledged and not applied,
which keeps a stale update from overwriting the fresh snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import Agent, Camera
from protocol.camera import CameraReport
from protocol.uplink import CameraUpdate, Hello

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HelloResult:
    acked_seq: int
    approved: list[str]


def _apply_report(camera: Camera, report: CameraReport) -> None:
    device = report.device
    camera.state = report.state
    camera.reason = report.reason
    camera.address = report.address
    camera.name = report.name
    camera.manufacturer = device.manufacturer if device else ""
    camera.model = device.model if device else ""
    camera.firmware = device.firmware if device else ""
    camera.serial = device.serial if device else ""
    # Profiles as validated by protocol.camera (URLs without credentials, by construction).
    camera.profiles = [profile.model_dump(mode="json") for profile in report.profiles]
    camera.snapshot_uri = report.snapshot_uri
    camera.first_seen = report.first_seen
    camera.last_seen = report.last_seen
    camera.changed_at = report.changed_at
    camera.gone_at = None


def _new_camera(agent_id: int, report: CameraReport) -> Camera:
    camera = Camera(agent_id=agent_id, endpoint_ref=report.endpoint_ref, approved=False)
    _apply_report(camera, report)
    return camera


async def apply_hello(
    session: AsyncSession, agent: Agent, hello: Hello, now: datetime, address: str | None
) -> HelloResult:
    existing = {
        camera.endpoint_ref: camera
        for camera in (await session.execute(select(Camera).where(Camera.agent_id == agent.id))).scalars()
    }
    reported: set[str] = set()
    for report in hello.cameras:
        if report.endpoint_ref in reported:
            continue  # a duplicate inside one snapshot: the first one wins
        reported.add(report.endpoint_ref)
        camera = existing.get(report.endpoint_ref)
        if camera is None:
            session.add(_new_camera(agent.id, report))
        else:
            _apply_report(camera, report)
    for ref, camera in existing.items():
        if ref not in reported and camera.gone_at is None:
            camera.gone_at = now
    if hello.seq < agent.last_seq:
        logger.warning(
            "agent %s: hello seq %s is below the stored %s (agent state reset?); following the agent",
            agent.id,
            hello.seq,
            agent.last_seq,
        )
    agent.last_seq = hello.seq
    agent.hostname = hello.hostname
    agent.version = hello.agent_version
    agent.online = True
    agent.last_seen = now
    agent.connected_from = address
    await session.flush()
    approved = sorted(ref for ref, camera in existing.items() if camera.approved and ref in reported)
    return HelloResult(acked_seq=hello.seq, approved=approved)


async def apply_update(session: AsyncSession, agent_id: int, message: CameraUpdate, now: datetime) -> bool:
    """Store the update unless its seq was seen; True when applied. Always refreshes last_seen."""
    advanced = (
        await session.execute(
            update(Agent)
            .where(Agent.id == agent_id, Agent.last_seq < message.seq)
            .values(last_seq=message.seq, last_seen=now, online=True)
            .returning(Agent.id)
        )
    ).scalar_one_or_none()
    if advanced is None:
        await touch(session, agent_id, now)
        return False
    report = message.camera
    camera = (
        await session.execute(
            select(Camera).where(Camera.agent_id == agent_id, Camera.endpoint_ref == report.endpoint_ref)
        )
    ).scalar_one_or_none()
    if camera is None:
        session.add(_new_camera(agent_id, report))
    else:
        _apply_report(camera, report)
    await session.flush()
    return True


async def touch(session: AsyncSession, agent_id: int, now: datetime) -> None:
    await session.execute(update(Agent).where(Agent.id == agent_id).values(last_seen=now, online=True))


async def mark_offline(session: AsyncSession, agent_id: int) -> None:
    await session.execute(update(Agent).where(Agent.id == agent_id).values(online=False))
