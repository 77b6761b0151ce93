"""The ONVIF device service (tds): clock, identity, services and capabilities."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from simulator.onvif.context import Operation, ServiceContext
from simulator.onvif.soap import NS, SoapFault, SoapRequest, element, text

UNAUTHENTICATED = frozenset({"GetSystemDateAndTime"})
"""Operations a camera answers without credentials (the client needs the clock to sign its requests)."""


def _date_time(tag: str, moment: datetime) -> etree._Element:
    return element(
        tag,
        element(
            "tt:Time",
            text("tt:Hour", moment.hour),
            text("tt:Minute", moment.minute),
            text("tt:Second", moment.second),
        ),
        element("tt:Date", text("tt:Year", moment.year), text("tt:Month", moment.month), text("tt:Day", moment.day)),
    )


def get_system_date_and_time(ctx: ServiceContext, request: SoapRequest) -> etree._Element:
    now = datetime.fromtimestamp(ctx.camera_time(), UTC)
    return element(
        "tds:GetSystemDateAndTimeResponse",
        element(
            "tds:SystemDateAndTime",
            text("tt:DateTimeType", "Manual"),
            text("tt:DaylightSavings", False),
            element("tt:TimeZone", text("tt:TZ", "UTC0")),
            _date_time("tt:UTCDateTime", now),
            _date_time("tt:LocalDateTime", now),
        ),
    )


def get_device_information(ctx: ServiceContext, request: SoapRequest) -> etree._Element:
    spec = ctx.spec
    return element(
        "tds:GetDeviceInformationResponse",
        text("tds:Manufacturer", spec.manufacturer),
        text("tds:Model", spec.model),
        text("tds:FirmwareVersion", spec.firmware),
        text("tds:SerialNumber", spec.serial or spec.endpoint_ref.rsplit(":", 1)[-1][:12].upper()),
        text("tds:HardwareId", spec.model),
    )


def _service(namespace: str, xaddr: str, major: int, minor: int) -> etree._Element:
    return element(
        "tds:Service",
        text("tds:Namespace", namespace),
        text("tds:XAddr", xaddr),
        element("tds:Version", text("tt:Major", major), text("tt:Minor", minor)),
    )


def get_services(ctx: ServiceContext, request: SoapRequest) -> etree._Element:
    if ctx.spec.quirks.broken_get_services:
        raise SoapFault("ter:ActionNotSupported", "GetServices is not supported", code="env:Receiver", status=500)
    return element(
        "tds:GetServicesResponse",
        _service(NS["tds"], ctx.device_xaddr, 2, 60),
        _service(NS["trt"], ctx.media_xaddr, 2, 60),
    )


def get_capabilities(ctx: ServiceContext, request: SoapRequest) -> etree._Element:
    return element(
        "tds:GetCapabilitiesResponse",
        element(
            "tds:Capabilities",
            element(
                "tt:Device",
                text("tt:XAddr", ctx.device_xaddr),
                element(
                    "tt:Network",
                    text("tt:IPFilter", False),
                    text("tt:ZeroConfiguration", False),
                    text("tt:IPVersion6", False),
                    text("tt:DynDNS", False),
                ),
                element(
                    "tt:System",
                    text("tt:DiscoveryResolve", True),
                    text("tt:DiscoveryBye", True),
                    text("tt:RemoteDiscovery", False),
                    text("tt:SystemBackup", False),
                    text("tt:SystemLogging", False),
                    text("tt:FirmwareUpgrade", False),
                    element("tt:SupportedVersions", text("tt:Major", 2), text("tt:Minor", 60)),
                ),
            ),
            element(
                "tt:Media",
                text("tt:XAddr", ctx.media_xaddr),
                element(
                    "tt:StreamingCapabilities",
                    text("tt:RTPMulticast", False),
                    text("tt:RTP_TCP", True),
                    text("tt:RTP_RTSP_TCP", True),
                ),
            ),
        ),
    )


OPERATIONS: dict[str, Operation] = {
    "GetSystemDateAndTime": get_system_date_and_time,
    "GetDeviceInformation": get_device_information,
    "GetServices": get_services,
    "GetCapabilities": get_capabilities,
}
