"""What pages and the API show, built from allow-lists of fields (never a hash, token or credential).

Stream and snapshot URLs are credential-free by protocol (CameraReport refuses them); they pass through
`strip_credentials` here as well, so a bad row could still not leak one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.redact import strip_credentials
from controller.db.models import Agent, Camera, Role, Unit, UnitKind
from controller.security.sessions import Principal
from controller.units import is_within, parents


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def unit_dict(unit: Unit) -> dict[str, Any]:
    return {
        "id": unit.id,
        "parent_id": unit.parent_id,
        "name": unit.name,
        "kind": unit.kind.value,
        "school_level": unit.school_level.value if unit.school_level else None,
        "time_zone": unit.time_zone,
        "camera_networks": list(unit.camera_networks),
    }


def agent_dict(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "unit_id": agent.unit_id,
        "hostname": agent.hostname,
        "version": agent.version,
        "online": agent.online and agent.revoked_at is None,
        "last_seen": _iso(agent.last_seen),
        "enrolled_at": _iso(agent.enrolled_at),
        "connected_from": agent.connected_from,
        "revoked": agent.revoked_at is not None,
    }


def _clean(url: Any) -> str | None:
    return strip_credentials(url) if isinstance(url, str) else None


def profile_dict(profile: dict[str, Any]) -> dict[str, Any]:
    keys = ("token", "name", "role", "encoding", "width", "height", "fps", "bitrate_kbps")
    shown = {key: profile.get(key) for key in keys}
    shown["stream_uri"] = _clean(profile.get("stream_uri"))
    return shown


def resolution(camera: Camera, role: str) -> str:
    for profile in camera.profiles:
        if profile.get("role") == role and profile.get("width") and profile.get("height"):
            return f"{profile['width']}x{profile['height']}"
    return ""


def camera_dict(camera: Camera) -> dict[str, Any]:
    return {
        "id": camera.id,
        "agent_id": camera.agent_id,
        "endpoint_ref": camera.endpoint_ref,
        "state": camera.state.value,
        "reason": camera.reason,
        "address": camera.address,
        "name": camera.name,
        "manufacturer": camera.manufacturer,
        "model": camera.model,
        "firmware": camera.firmware,
        "serial": camera.serial,
        "main_resolution": resolution(camera, "main"),
        "sub_resolution": resolution(camera, "sub"),
        "profiles": [profile_dict(p) for p in camera.profiles],
        "snapshot_uri": _clean(camera.snapshot_uri),
        "first_seen": _iso(camera.first_seen),
        "last_seen": _iso(camera.last_seen),
        "changed_at": _iso(camera.changed_at),
        "approved": camera.approved,
    }


async def visible_units(session: AsyncSession, principal: Principal) -> list[Unit]:
    units = list((await session.execute(select(Unit).order_by(Unit.name, Unit.id))).scalars())
    if principal.role is Role.ADMIN:
        return units
    if principal.role is not Role.DISTRICT_TECHNICIAN or principal.unit_id is None:
        return []
    tree = await parents(session)
    scope = principal.unit_id
    return [unit for unit in units if is_within(tree, unit.id, scope)]


async def agents_of(session: AsyncSession, unit_ids: list[int]) -> list[Agent]:
    if not unit_ids:
        return []
    query = select(Agent).where(Agent.unit_id.in_(unit_ids), Agent.revoked_at.is_(None)).order_by(Agent.id)
    return list((await session.execute(query)).scalars())


async def cameras_of(session: AsyncSession, agent_ids: list[int]) -> list[Camera]:
    if not agent_ids:
        return []
    query = (
        select(Camera)
        .where(Camera.agent_id.in_(agent_ids), Camera.gone_at.is_(None))
        .order_by(Camera.agent_id, Camera.name, Camera.address, Camera.id)
    )
    return list((await session.execute(query)).scalars())


@dataclass
class SchoolRow:
    unit: Unit
    agents: list[Agent] = field(default_factory=list)
    cameras_by_state: Counter[str] = field(default_factory=Counter)

    @property
    def online(self) -> bool:
        return any(agent.online for agent in self.agents)

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": unit_dict(self.unit),
            "agents": [agent_dict(agent) for agent in self.agents],
            "cameras_by_state": dict(self.cameras_by_state),
        }


async def school_rows(session: AsyncSession, principal: Principal) -> list[SchoolRow]:
    schools = [unit for unit in await visible_units(session, principal) if unit.kind is UnitKind.SCHOOL]
    rows = {unit.id: SchoolRow(unit) for unit in schools}
    agents = await agents_of(session, list(rows))
    by_agent: dict[int, SchoolRow] = {}
    for agent in agents:
        rows[agent.unit_id].agents.append(agent)
        by_agent[agent.id] = rows[agent.unit_id]
    for camera in await cameras_of(session, list(by_agent)):
        by_agent[camera.agent_id].cameras_by_state[camera.state.value] += 1
    return list(rows.values())


async def agents_unit(session: AsyncSession, agent_id: int) -> int | None:
    return (await session.execute(select(Agent.unit_id).where(Agent.id == agent_id))).scalar_one_or_none()
