"""The JPEG a camera serves at its snapshot URI: the one place that asks the video side for it."""

from __future__ import annotations

import asyncio

from simulator import video
from simulator.onvif.profiles import MediaProfile


async def snapshot_jpeg(camera_name: str, profile: MediaProfile) -> bytes:
    """JPEG bytes of the camera's picture for `profile` (rendered and encoded off the event loop)."""
    return await asyncio.to_thread(video.snapshot_jpeg, camera_name, profile)
