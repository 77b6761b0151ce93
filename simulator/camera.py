"""One simulated camera: its ONVIF HTTP server, its WS-Discovery responder and its RTSP server, started together.

Start is cheap (no encoding: the RTSP side encodes its loops lazily), so many cameras start in one process in
well under a second.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol

from common.logs import SECRETS
from simulator.onvif.context import ServiceContext
from simulator.onvif.profiles import PROFILES, MediaProfile
from simulator.onvif.server import OnvifHttpServer, SeenRequest
from simulator.rtsp import RtspServer
from simulator.spec import CameraSpec
from simulator.wsdiscovery import DiscoveryResponder

logger = logging.getLogger(__name__)


class _Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SimulatedCamera:
    """A camera on spec.host: ONVIF at http_port, RTSP at rtsp_port, WS-Discovery at 3702."""

    def __init__(self, spec: CameraSpec, *, cache_dir: Path | None = None, discovery_port: int = 3702) -> None:
        self.spec = spec
        if spec.password:
            SECRETS.add(spec.password)
        self.rtsp = RtspServer(spec, cache_dir=cache_dir)
        self._context = ServiceContext(
            spec=spec, camera_time=self.camera_time, profiles=PROFILES, stream_url=self.stream_url
        )
        self._http = OnvifHttpServer(self._context)
        self.discovery = DiscoveryResponder(spec, port=discovery_port)
        self._running: list[_Service] = []

    def camera_time(self) -> float:
        """The camera's clock: true time plus its clock-offset quirk (POSIX seconds)."""
        return time.time() + self.spec.quirks.clock_offset_s

    def stream_url(self, profile: MediaProfile) -> str:
        """The RTSP URL of a profile (never with credentials)."""
        return self.rtsp.url(profile.path)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def device_xaddr(self) -> str:
        return self._context.device_xaddr

    @property
    def media_xaddr(self) -> str:
        return self._context.media_xaddr

    @property
    def stream_urls(self) -> dict[str, str]:
        """RTSP URL per profile token."""
        return {p.token: self.stream_url(p) for p in PROFILES}

    @property
    def snapshot_urls(self) -> dict[str, str]:
        return {p.token: self._context.snapshot_url(p) for p in PROFILES}

    @property
    def requests(self) -> list[SeenRequest]:
        """The ONVIF and snapshot requests this camera saw (the latest 10,000), in order."""
        return list(self._http.requests)

    async def start(self) -> None:
        services: list[_Service] = [self._http, self.rtsp, self.discovery]
        try:
            for service in services:
                await service.start()
                self._running.append(service)
        except BaseException:
            await self.stop()
            raise
        logger.debug("%s: started on %s", self.spec.name, self.spec.host)

    async def stop(self) -> None:
        """Stop every service (the discovery responder says Bye); safe to call twice."""
        while self._running:
            service = self._running.pop()
            try:
                await service.stop()
            except Exception:
                logger.exception("%s: error while stopping %s", self.spec.name, type(service).__name__)

    async def __aenter__(self) -> SimulatedCamera:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
