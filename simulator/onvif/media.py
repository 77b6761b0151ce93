"""The ONVIF media service (trt): profiles, stream URIs and snapshot URIs."""

from __future__ import annotations

from lxml import etree

from simulator.onvif.context import Operation, ServiceContext
from simulator.onvif.profiles import MediaProfile
from simulator.onvif.soap import NS, SoapFault, SoapRequest, element, text

_SOURCE_TOKEN = "VideoSource_1"  # noqa: S105 (an ONVIF reference token, not a secret)
_SOURCE_CONFIG_TOKEN = "VideoSourceConfig_1"  # noqa: S105


def _video_source_configuration(ctx: ServiceContext) -> etree._Element:
    main = max(ctx.profiles, key=lambda p: p.width * p.height)
    return element(
        "tt:VideoSourceConfiguration",
        text("tt:Name", "VideoSourceConfig"),
        text("tt:UseCount", len(ctx.profiles)),
        text("tt:SourceToken", _SOURCE_TOKEN),
        element("tt:Bounds", x="0", y="0", width=str(main.width), height=str(main.height)),
        token=_SOURCE_CONFIG_TOKEN,
    )


def _video_encoder_configuration(profile: MediaProfile) -> etree._Element:
    return element(
        "tt:VideoEncoderConfiguration",
        text("tt:Name", f"VideoEncoder_{profile.token}"),
        text("tt:UseCount", 1),
        text("tt:Encoding", "H264"),
        element("tt:Resolution", text("tt:Width", profile.width), text("tt:Height", profile.height)),
        text("tt:Quality", "5"),
        element(
            "tt:RateControl",
            text("tt:FrameRateLimit", profile.fps),
            text("tt:EncodingInterval", 1),
            text("tt:BitrateLimit", profile.bitrate_kbps),
        ),
        element(
            "tt:H264",
            text("tt:GovLength", round(profile.gop_s * profile.fps)),
            text("tt:H264Profile", "Main" if profile.width >= 1280 else "Baseline"),
        ),
        element(
            "tt:Multicast",
            element("tt:Address", text("tt:Type", "IPv4"), text("tt:IPv4Address", "0.0.0.0")),
            text("tt:Port", 0),
            text("tt:TTL", 0),
            text("tt:AutoStart", False),
        ),
        text("tt:SessionTimeout", "PT60S"),
        token=f"VideoEncoder_{profile.token}",
    )


def _profile(ctx: ServiceContext, profile: MediaProfile, tag: str) -> etree._Element:
    return element(
        tag,
        text("tt:Name", profile.name),
        _video_source_configuration(ctx),
        _video_encoder_configuration(profile),
        token=profile.token,
        fixed="true",
    )


def _requested_profile(ctx: ServiceContext, request: SoapRequest) -> MediaProfile:
    node = request.body.find(f"{{{NS['trt']}}}ProfileToken")
    token = (node.text or "").strip() if node is not None else ""
    profile = ctx.profile(token)
    if profile is None:
        raise SoapFault("ter:NoProfile", f"no profile with token {token[:64]!r}")
    return profile


def _media_uri(tag: str, uri: str) -> etree._Element:
    return element(
        tag,
        element(
            "trt:MediaUri",
            text("tt:Uri", uri),
            text("tt:InvalidAfterConnect", False),
            text("tt:InvalidAfterReboot", False),
            text("tt:Timeout", "PT0S"),
        ),
    )


def get_profiles(ctx: ServiceContext, request: SoapRequest) -> etree._Element:
    return element("trt:GetProfilesResponse", *(_profile(ctx, p, "trt:Profiles") for p in ctx.profiles))


def get_profile(ctx: ServiceContext, request: SoapRequest) -> etree._Element:
    return element("trt:GetProfileResponse", _profile(ctx, _requested_profile(ctx, request), "trt:Profile"))


def get_stream_uri(ctx: ServiceContext, request: SoapRequest) -> etree._Element:
    profile = _requested_profile(ctx, request)
    return _media_uri("trt:GetStreamUriResponse", ctx.stream_url(profile))


def get_snapshot_uri(ctx: ServiceContext, request: SoapRequest) -> etree._Element:
    profile = _requested_profile(ctx, request)
    return _media_uri("trt:GetSnapshotUriResponse", ctx.snapshot_url(profile))


OPERATIONS: dict[str, Operation] = {
    "GetProfiles": get_profiles,
    "GetProfile": get_profile,
    "GetStreamUri": get_stream_uri,
    "GetSnapshotUri": get_snapshot_uri,
}
