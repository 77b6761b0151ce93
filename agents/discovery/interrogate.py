"""Asking one device, over ONVIF, everything the agent needs: clock, identity, profiles, stream and snapshot URIs.

Every failure becomes a state and a reason (DeviceError); the caller bounds the whole exchange with the
per-device deadline, which also bounds replies that trickle in byte by byte.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import zeep.exceptions

from agents.discovery.credentials import Login
from agents.discovery.errors import AuthFailed, DeviceError, OutsideNetworks, Unreachable
from agents.discovery.onvif_client import (
    DEVICE_BINDING,
    MEDIA_BINDING,
    MEDIA_NS,
    OnvifService,
    load_documents,
)
from agents.discovery.profiles import read_profiles, to_stream_profiles
from agents.discovery.soap_transport import CappedTransport
from agents.networks import CameraNetworks
from common.logs import SECRETS
from common.redact import strip_credentials
from protocol.camera import DeviceInfo, StreamProfile

logger = logging.getLogger(__name__)

_NOT_AUTHORIZED = ("notauthorized", "not authorized", "sender not authorized", "authority failure")
SOAP_ERRORS = (zeep.exceptions.Error, AttributeError, TypeError, ValueError, KeyError, IndexError, UnicodeError)
"""What a broken reply makes zeep (or our reading of its objects) raise."""


@dataclass
class Findings:
    """What one interrogation learnt, filled in step by step (partial when a step fails)."""

    step: str = "GetSystemDateAndTime"
    clock_offset_s: float | None = None
    device: DeviceInfo | None = None
    profiles: list[StreamProfile] = field(default_factory=list)
    snapshot_uri: str | None = None


def _short(text: object, limit: int = 160) -> str:
    return SECRETS.scrub(" ".join(str(text).split()))[:limit]


def _is_auth_fault(fault: zeep.exceptions.Fault) -> bool:
    words = " ".join([str(fault.message or ""), str(fault.code or "")] + [str(s) for s in fault.subcodes or []])
    return any(marker in words.lower() for marker in _NOT_AUTHORIZED)


def _camera_time(reply: Any) -> dt.datetime | None:
    utc = getattr(reply, "UTCDateTime", None)
    if utc is None:
        return None
    try:
        return dt.datetime(
            int(utc.Date.Year),
            int(utc.Date.Month),
            int(utc.Date.Day),
            int(utc.Time.Hour),
            int(utc.Time.Minute),
            int(utc.Time.Second),
            tzinfo=dt.UTC,
        )
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)[:256]


class Interrogator:
    """Interrogates devices through one shared aiohttp session; `close()` when done."""

    def __init__(self, *, max_response_bytes: int, deadline_s: float) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=deadline_s, connect=min(deadline_s, 5.0)),
            connector=aiohttp.TCPConnector(limit=256, limit_per_host=2, ssl=False),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        self._transport = CappedTransport(self._session, max_response_bytes)

    async def close(self) -> None:
        await self._session.close()

    async def interrogate(
        self, device_xaddr: str, login: Login, findings: Findings, networks: CameraNetworks | None
    ) -> None:
        """Fill `findings`; DeviceError (with state and reason) when the device cannot be used.

        `networks`: where the media service and stream URIs must be (None for a device a technician approved).
        """
        try:
            await self._steps(device_xaddr, login, findings, networks)
        except DeviceError:
            raise
        except zeep.exceptions.Fault as fault:
            if _is_auth_fault(fault):
                raise AuthFailed(f"credentials refused at {findings.step}: {_short(fault.message)}") from None
            raise Unreachable(f"{findings.step} failed: SOAP fault {_short(fault.message)}") from None
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(f"connection refused or failed at {findings.step}: {_short(exc.os_error)}") from None
        except aiohttp.ServerDisconnectedError:
            raise Unreachable(f"the device closed the connection at {findings.step}") from None
        except aiohttp.ClientPayloadError as exc:
            raise Unreachable(f"broken reply to {findings.step}: {_short(exc)}") from None
        except aiohttp.ClientError as exc:
            raise Unreachable(f"HTTP error at {findings.step}: {type(exc).__name__} {_short(exc)}") from None
        except SOAP_ERRORS as exc:
            raise Unreachable(f"unusable reply to {findings.step}: {type(exc).__name__} {_short(exc)}") from None

    async def _steps(
        self, device_xaddr: str, login: Login, findings: Findings, networks: CameraNetworks | None
    ) -> None:
        device_doc, media_doc = await load_documents()

        def service(document: Any, binding: str, xaddr: str, offset: dt.timedelta | None) -> OnvifService:
            return OnvifService(document, binding, xaddr, self._transport, login.username, login.password, offset)

        offset: dt.timedelta | None = None
        anonymous = service(device_doc, DEVICE_BINDING, device_xaddr, None)
        findings.step = "GetSystemDateAndTime"
        try:
            reply = await anonymous.call("GetSystemDateAndTime", anonymous=True)
        except (zeep.exceptions.Fault, AuthFailed):
            # Some firmware wants credentials even for the clock: ask again signed, with our own clock.
            reply = await anonymous.call("GetSystemDateAndTime")
        camera_time = _camera_time(reply)
        if camera_time is not None:
            offset = camera_time - dt.datetime.now(dt.UTC)
            findings.clock_offset_s = round(offset.total_seconds(), 3)

        device = service(device_doc, DEVICE_BINDING, device_xaddr, offset)
        findings.step = "GetDeviceInformation"
        info = await device.call("GetDeviceInformation")
        findings.device = DeviceInfo(
            manufacturer=_text(info.Manufacturer),
            model=_text(info.Model),
            firmware=_text(info.FirmwareVersion),
            serial=_text(info.SerialNumber),
            hardware_id=_text(info.HardwareId),
        )

        media_xaddr = await self._media_xaddr(device, findings)
        if networks is not None and not networks.url_inside(media_xaddr):
            where = _short(strip_credentials(media_xaddr))
            raise OutsideNetworks(f"media service at {where} is outside the camera networks")
        media = service(media_doc, MEDIA_BINDING, media_xaddr, offset)

        findings.step = "GetProfiles"
        raw = read_profiles(await media.call("GetProfiles"))
        if not raw:
            raise Unreachable("GetProfiles returned no video profile")
        uris: dict[str, str | None] = {}
        for profile in raw:
            findings.step = f"GetStreamUri({profile.token[:40]})"
            reply = await media.call(
                "GetStreamUri",
                StreamSetup={"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                ProfileToken=profile.token,
            )
            uri = _clean_uri(reply, "stream URI", ("rtsp", "rtsps"), networks)
            uris[profile.token] = uri
        findings.profiles = to_stream_profiles(raw, uris)

        main = next((p for p in findings.profiles if p.role == "main"), findings.profiles[0])
        findings.step = "GetSnapshotUri"
        try:
            reply = await media.call("GetSnapshotUri", ProfileToken=main.token)
        except zeep.exceptions.Fault as fault:
            if _is_auth_fault(fault):
                raise
            logger.debug("camera at %s: no snapshot URI: %s", device_xaddr, _short(fault.message))
        else:
            findings.snapshot_uri = _clean_uri(reply, "snapshot URI", ("http", "https"), networks)

    async def _media_xaddr(self, device: OnvifService, findings: Findings) -> str:
        findings.step = "GetServices"
        try:
            services = await device.call("GetServices", IncludeCapability=False)
        except zeep.exceptions.Fault as fault:
            if _is_auth_fault(fault):
                raise
            logger.debug("GetServices faulted (%s); falling back to GetCapabilities", _short(fault.message))
        else:
            for entry in list(services or [])[:64]:
                if getattr(entry, "Namespace", None) == MEDIA_NS and getattr(entry, "XAddr", None):
                    return str(entry.XAddr)
        findings.step = "GetCapabilities"
        capabilities = await device.call("GetCapabilities", Category="All")
        xaddr = getattr(getattr(capabilities, "Media", None), "XAddr", None)
        if not xaddr:
            raise Unreachable("the device names no media service (GetServices and GetCapabilities)")
        return str(xaddr)


def _clean_uri(reply: Any, what: str, schemes: tuple[str, ...], networks: CameraNetworks | None) -> str | None:
    uri = getattr(reply, "Uri", None)
    if not uri:
        return None
    clean = strip_credentials(str(uri).strip())[:2048]
    if clean.split(":", 1)[0].lower() not in schemes:
        raise Unreachable(f"{what} has an unexpected scheme: {_short(clean)}")
    if networks is not None and not networks.url_inside(clean):
        raise OutsideNetworks(f"{what} {_short(clean)} is outside the camera networks")
    return clean
