"""What the ONVIF operations of one camera need to answer: its spec, its clock and its URLs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from simulator.onvif.profiles import MediaProfile
from simulator.onvif.soap import SoapRequest
from simulator.spec import CameraSpec

DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"


@dataclass(frozen=True)
class ServiceContext:
    spec: CameraSpec
    camera_time: Callable[[], float]
    """The camera's clock (true time plus the clock-offset quirk), POSIX seconds."""
    profiles: tuple[MediaProfile, ...]
    stream_url: Callable[[MediaProfile], str]
    """The RTSP URL of a profile, without credentials."""

    @property
    def base_url(self) -> str:
        return f"http://{self.spec.host}:{self.spec.http_port}"

    @property
    def device_xaddr(self) -> str:
        return self.base_url + DEVICE_PATH

    @property
    def media_xaddr(self) -> str:
        return self.base_url + MEDIA_PATH

    def snapshot_url(self, profile: MediaProfile) -> str:
        return f"{self.base_url}/snapshot/{profile.token}.jpg"

    def profile(self, token: str) -> MediaProfile | None:
        return next((p for p in self.profiles if p.token == token), None)


Operation = Callable[[ServiceContext, SoapRequest], etree._Element]
"""One SOAP operation: the request in, the response body element out (or SoapFault raised)."""
