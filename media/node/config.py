"""The media node's configuration: a TOML file and KETNOI_MEDIA_* environment variables.

Loaded with `load_node_config(path)` (common/config.py's `load_config`); every field has a description and a
default that works on a fresh machine (loopback only). The shared media secret is read from a file, never from
the configuration itself, so that it stays out of process listings, config dumps and logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.config import ConfigError, load_config
from common.logs import SECRETS
from protocol.media import IceServer

ENV_PREFIX = "KETNOI_MEDIA"
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _http_url(value: str, field: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{field} must start with http:// or https://")
    return value.rstrip("/")


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str = Field(
        default="media-1",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="this node's name; media tokens name it as their audience",
    )
    host: str = Field(default="127.0.0.1", description="address the HTTP server listens on")
    port: int = Field(default=8600, ge=0, le=65535, description="TCP port the HTTP server listens on (0: any)")
    public_url: str = Field(
        default="", description="base URL browsers and agents use for WHIP and WHEP (default http://HOST:PORT)"
    )
    control_url: str = Field(
        default="", description="base URL the controller uses for /control/close (default: public_url)"
    )
    controller_url: str = Field(
        default="", description="the controller's base URL, where load reports go (empty: no reports)"
    )
    media_secret_file: Path = Field(
        default=Path("var/controller/media-secret.key"),
        description="file holding the media secret shared with the controller (hex, as the controller writes it)",
    )
    capacity_streams: int = Field(default=400, ge=1, description="forwarded streams accepted before the node is full")
    relay_idle_close_s: float = Field(
        default=30.0, ge=0, le=3600, description="a camera relay closes this long after its last viewer left"
    )
    report_interval_s: float = Field(default=5.0, gt=0, le=300, description="how often load reports are sent")
    ice_servers: list[IceServer] = Field(
        default_factory=list, max_length=8, description="STUN/TURN servers for the node's own peer connections"
    )
    loopback_candidates: bool = Field(
        default=False, description="offer 127.0.0.1 as an ICE host candidate (the demo and tests on one machine)"
    )
    max_sdp_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024, description="largest SDP offer accepted")
    token_requests_per_minute: int = Field(
        default=600,
        ge=1,
        description="WHIP/WHEP requests per client address per minute before 429 (generous: mobile carriers put "
        "many parents behind one address, and a request without a valid token costs the node only an HMAC)",
    )
    max_viewers_per_relay: int = Field(default=1000, ge=1, description="viewers one camera relay accepts")
    fast_send_path: bool = Field(
        default=True,
        description="send to camera viewers on the shared-payload path (media.direct); false: aiortc's own sender",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="origins allowed to call WHEP from a browser (the controller's public URL), e.g. "
        '["https://ketnoi.example.vn"]',
    )
    meeting_codec: str = Field(
        default="VP8", pattern=r"^(VP8|H264)$", description="the one video codec of every meeting on this node"
    )
    meeting_max_video: int = Field(
        default=9, ge=1, le=25, description="videos each meeting participant receives at most (audio from all)"
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="logging level")

    @field_validator("public_url", "control_url", "controller_url")
    @classmethod
    def _urls(cls, value: str, info: object) -> str:
        return _http_url(value, getattr(info, "field_name", "url"))

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        out = []
        for origin in value:
            origin = origin.rstrip("/")
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
            out.append(origin)
        return out

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def effective_control_url(self) -> str:
        return self.control_url or self.effective_public_url


def load_node_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> NodeConfig:
    return load_config(NodeConfig, path, ENV_PREFIX, environ)


def load_media_secret(path: Path) -> bytes:
    """The shared media secret: a file holding it in hex (as the controller writes it, mode 0600).

    The hex text is registered with the log filter so that no log line can carry it; a missing, malformed or
    short secret stops the start with a message naming the file.
    """
    try:
        raw = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"media_secret_file {path} does not exist (the controller creates it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read media_secret_file {path}: {exc}") from None
    if not _HEX.match(raw) or len(raw) % 2:
        raise ConfigError(f"media_secret_file {path} does not hold a hex secret")
    secret = bytes.fromhex(raw)
    if len(secret) < 16:
        raise ConfigError(f"the media secret in {path} is too short (need at least 16 bytes)")
    SECRETS.add(raw)
    return secret
