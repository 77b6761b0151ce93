"""What a simulated camera is: its identity, addresses, credentials and the quirks it should show.

The spec is the only thing shared between the simulator's services (ONVIF, WS-Discovery, RTSP, snapshot) and
the tests that drive them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

# Namespace for stable per-camera endpoint references: the same name gives the same urn:uuid on every run.
_ENDPOINT_NS = uuid.UUID("5b0e3a52-6f1c-4c8e-9d1a-6b2f4c1d7e90")


@dataclass(frozen=True)
class Quirks:
    """Switches for the faults real cameras show. All off by default: a well-behaved camera."""

    clock_offset_s: float = 0.0
    """The camera's clock is this far from true time (months off: about 1e7). Auth must still work."""
    no_auth: bool = False
    """Accept every ONVIF and RTSP request without credentials."""
    broken_get_services: bool = False
    """GetServices answers with a SOAP fault (the client must fall back to GetCapabilities)."""
    slow_reply_s: float = 0.0
    """Wait this long before answering each SOAP request."""
    trickle_bytes_per_s: int = 0
    """Send SOAP replies this many bytes per second (0: all at once)."""
    stall_after_s: float | None = None
    """RTSP: stop sending media this many seconds after PLAY, keeping the connection open."""
    drop_after_s: float | None = None
    """RTSP: close the connection this many seconds after PLAY."""
    hostile_soap: str | None = None
    """Answer SOAP with a hostile body: 'entities' (billion laughs), 'dtd', 'external' (external entity
    reference), or 'huge' (a reply of tens of megabytes)."""
    refuse_connections: bool = False
    """Answer WS-Discovery probes but refuse (close) every HTTP and RTSP connection."""


@dataclass(frozen=True)
class CameraSpec:
    """One simulated camera."""

    name: str
    host: str
    """The IP address every service of this camera binds to (one camera, one address, like real devices)."""
    http_port: int = 8080
    rtsp_port: int = 8554
    username: str = "admin"
    password: str = field(default="", repr=False)
    manufacturer: str = "Ketnoi Simulator"
    model: str = "SIM-720"
    firmware: str = "1.0.0"
    serial: str = ""
    quirks: Quirks = Quirks()

    @property
    def endpoint_ref(self) -> str:
        """A stable urn:uuid derived from the camera's name."""
        return f"urn:uuid:{uuid.uuid5(_ENDPOINT_NS, self.name)}"

    @property
    def device_xaddr(self) -> str:
        return f"http://{self.host}:{self.http_port}/onvif/device_service"
