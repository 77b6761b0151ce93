"""The one place that touches onvif-zeep-async (pinned 4.3.0) internals: parsed WSDLs, zeep clients, WS-Security.

The package's ONVIFCamera opens an aiohttp session per service and reads replies whole; here we take only its
parts that matter (the bundled WSDLs parsed once per process and shared by every device, its zeep client
subclass, its UsernameToken with a clock offset) and give them our capped transport and hardened settings.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import onvif
from onvif.client import UsernameDigestTokenDtDiff, ZeepAsyncClient, _cached_document
from onvif.wsa import WsAddressingIfMissingPlugin
from zeep.settings import Settings

from agents.discovery.soap_transport import CappedTransport

WSDL_DIR = Path(onvif.__file__).parent / "wsdl"
DEVICE_WSDL = WSDL_DIR / "devicemgmt.wsdl"
MEDIA_WSDL = WSDL_DIR / "media.wsdl"
DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
DEVICE_BINDING = f"{{{DEVICE_NS}}}DeviceBinding"
MEDIA_BINDING = f"{{{MEDIA_NS}}}MediaBinding"


def hardened_settings() -> Settings:
    """zeep settings for untrusted replies: no DTD, no entities, no external references, no huge trees."""
    return Settings(
        strict=False,  # cameras send sloppy XML; structure is still checked by the WSDL types
        xml_huge_tree=False,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )


async def load_documents() -> tuple[Any, Any]:
    """The device and media WSDL documents, parsed off the event loop once per process and then shared.

    The package caches them by path; call this once before interrogating devices in parallel, so that they are
    not parsed once per device.
    """
    device = await _cached_document(str(DEVICE_WSDL))
    media = await _cached_document(str(MEDIA_WSDL))
    return device, media


class OnvifService:
    """One ONVIF service of one device, with and without WS-Security, sharing the capped transport."""

    def __init__(
        self,
        document: Any,
        binding: str,
        xaddr: str,
        transport: CappedTransport,
        username: str,
        password: str,
        clock_offset: dt.timedelta | None,
    ) -> None:
        settings = hardened_settings()
        self._anonymous = ZeepAsyncClient(
            wsdl=document, transport=transport, settings=settings, plugins=[WsAddressingIfMissingPlugin()]
        ).create_service(binding, xaddr)
        token = UsernameDigestTokenDtDiff(username, password, dt_diff=clock_offset, use_digest=True)
        self._signed = ZeepAsyncClient(
            wsdl=document, wsse=token, transport=transport, settings=settings, plugins=[WsAddressingIfMissingPlugin()]
        ).create_service(binding, xaddr)

    async def call(self, operation: str, *, anonymous: bool = False, **params: Any) -> Any:
        proxy = self._anonymous if anonymous else self._signed
        return await getattr(proxy, operation)(**params)
