"""Helpers for the agent's tests: simulated cameras in this process and agent configurations around them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from agents.config import AgentConfig
from simulator.camera import SimulatedCamera
from simulator.spec import CameraSpec, Quirks

PASSWORD = "p@ss:w/rd%"
"""A camera password with characters that change when URL-encoded."""


def spec(name: str, host: str, *, password: str = PASSWORD, **quirks: Any) -> CameraSpec:
    return CameraSpec(name=name, host=host, password=password, quirks=Quirks(**quirks))


@contextlib.asynccontextmanager
async def running(specs: Sequence[CameraSpec]) -> AsyncIterator[list[SimulatedCamera]]:
    """Start every camera; stop them all on the way out, whatever happened."""
    cameras: list[SimulatedCamera] = []
    try:
        for one in specs:
            camera = SimulatedCamera(one)
            await camera.start()
            cameras.append(camera)
        yield cameras
    finally:
        for camera in cameras:
            await camera.stop()


def config(
    state_dir: Path,
    targets: Sequence[str],
    *,
    networks: Sequence[str] = ("127.0.1.0/24",),
    deadline_s: float = 2.0,
    wait_s: float = 0.4,
    password: str = PASSWORD,
    **extra: Any,
) -> AgentConfig:
    """A loopback configuration: unicast probes only (multicast must not leave this machine's namespace)."""
    data: dict[str, Any] = {
        "state_dir": str(state_dir),
        "site": {"camera_networks": list(networks), "multicast": False, "unicast_targets": list(targets)},
        "credentials": {"username": "admin", "password": password},
        "timeouts": {"probe_wait_s": wait_s, "device_deadline_s": deadline_s},
        "health_port": 0,
    }
    data.update(extra)
    return AgentConfig.model_validate(data)
