"""The controller's configuration: a TOML file and KETNOI_CONTROLLER_* environment variables.

Loaded with `common.config.load_config(ControllerConfig, path, ENV_PREFIX)`; every field has a description and a
safe default, so `python -m controller serve` works on a fresh machine (SQLite under data_dir, loopback only).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.config import ConfigError
from controller.sso.settings import SsoRole

logger = logging.getLogger(__name__)

ENV_PREFIX = "KETNOI_CONTROLLER"
DEFAULT_DATA_DIR = Path("var/controller")


class ControllerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="address the HTTP server listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port the HTTP server listens on (0: any)")
    public_url: str = Field(
        default="",
        description="the URL browsers and agents use to reach the controller, e.g. https://ketnoi.example.vn; "
        "state-changing requests must come from this origin (default http://HOST:PORT)",
    )
    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="where the SQLite database and secret key live")
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB "
        "(default: sqlite under data_dir)",
    )
    database_schema: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL only: the schema to use (search_path); tests use one per run",
    )
    secret_key_file: Path | None = Field(
        default=None, description="file holding the server's secret key; generated (mode 0600) if missing"
    )
    session_idle_timeout_s: int = Field(default=30 * 60, ge=60, description="sign out after this long idle")
    session_absolute_timeout_s: int = Field(
        default=12 * 3600, ge=300, description="sign out this long after sign-in, whatever the activity"
    )
    cookie_secure: bool = Field(
        default=True, description="send the session cookie over HTTPS only (set false for a plain-HTTP demo)"
    )
    login_max_failures: int = Field(default=5, ge=1, description="failed sign-ins before an account is locked")
    login_lockout_s: int = Field(default=15 * 60, ge=1, description="how long a locked account stays locked")
    login_attempts_per_minute: int = Field(
        default=20, ge=1, description="sign-in attempts per client address per minute before 429"
    )
    enrol_attempts_per_minute: int = Field(
        default=10, ge=1, description="enrolment attempts per client address per minute before 429"
    )
    agent_offline_timeout_s: float = Field(
        default=90.0, gt=0, description="an agent with no message for this long is shown offline"
    )
    status_interval_s: float = Field(default=30.0, gt=0, description="how often agents send a status message")
    enrolment_code_lifetime_s: int = Field(default=24 * 3600, ge=60, description="how long an enrolment code works")
    uplink_messages_per_second: float = Field(
        default=50.0, gt=0, description="sustained message rate allowed on one agent connection"
    )
    uplink_message_burst: int = Field(default=500, ge=1, description="messages allowed in a burst on one connection")
    agent_metrics_timeout_s: float = Field(
        default=8.0, gt=0, le=60, description="how long a Prometheus scrape through the controller waits for the agent"
    )
    metrics_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="client networks allowed to read /metrics (no session needed; aggregate figures only)",
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="logging level")
    media_secret_file: Path | None = Field(
        default=None,
        description="file holding the secret shared with the media nodes (tokens, node reports); generated (mode "
        "0600) if missing (default DATA_DIR/media-secret.key)",
    )
    turn_urls: list[str] = Field(
        default_factory=list,
        description="TURN/STUN URLs handed to browsers and agents (turn:host:3478?transport=udp, turns:..., "
        "stun:...); empty: none",
    )
    turn_secret_file: Path | None = Field(
        default=None, description="file holding coturn's static-auth-secret (TURN REST credentials)"
    )
    turn_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600, description="lifetime of TURN credentials")
    media_token_ttl_s: int = Field(
        default=60, ge=10, le=3600, description="lifetime of a media token (viewer, publisher, meeting join)"
    )
    live_max_devices: int = Field(default=2, ge=1, le=20, description="devices a parent may watch on at once")
    live_idle_close_s: float = Field(
        default=60.0, gt=0, description="stop a camera's publication this long after its last viewer left"
    )
    meeting_entry_margin_minutes: int = Field(
        default=15, ge=0, le=120, description="a meeting or class can be entered this long before its start"
    )

    sso_issuer: str = Field(
        default="",
        description="the Department's OpenID Connect issuer URL (https; http only on loopback); empty: no single "
        "sign-on",
    )
    sso_client_id: str = Field(default="", max_length=256, description="this controller's client id at the provider")
    sso_client_secret_file: Path | None = Field(default=None, description="file holding the client secret")
    sso_client_auth: Literal["client_secret_basic", "client_secret_post"] = Field(
        default="client_secret_basic", description="how the client secret is sent to the token endpoint"
    )
    sso_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile"], description="scopes asked for (openid is always added)"
    )
    sso_username_claim: str = Field(default="preferred_username", description="claim giving the local username")
    sso_role_claim: str = Field(
        default="groups",
        description="claim listing the groups or roles: a name, or a dotted path such as realm_access.roles",
    )
    sso_role_map: dict[str, SsoRole] = Field(
        default_factory=dict,
        description="provider group/role value -> {role, unit_id}; the first entry (in this order) the user has wins",
    )
    sso_create_users: bool = Field(
        default=False,
        description="create the local user at the first sign-in when a mapping applies (otherwise only linked users)",
    )
    sso_timeout_s: float = Field(default=5.0, gt=0, le=60, description="deadline of each call to the provider")

    @field_validator("metrics_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("turn_urls")
    @classmethod
    def _turn_urls(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith(("turn:", "turns:", "stun:", "stuns:")):
                raise ValueError("turn_urls start with turn:, turns:, stun: or stuns:")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("database_url must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
        return value

    @field_validator("sso_issuer")
    @classmethod
    def _sso_issuer(cls, value: str) -> str:
        loopback = value.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:"))
        if value and not (value.startswith("https://") or loopback):
            raise ValueError("sso_issuer must be an https:// URL (http:// only on loopback)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _sso(self) -> ControllerConfig:
        if self.sso_issuer and not (self.sso_client_id and self.sso_client_secret_file):
            raise ValueError("sso_issuer needs sso_client_id and sso_client_secret_file")
        for group, mapped in self.sso_role_map.items():
            if (mapped.role == "admin") != (mapped.unit_id is None):
                raise ValueError(f"sso_role_map[{group!r}]: admin has no unit_id, every other role needs one")
        return self

    @model_validator(mode="after")
    def _timeouts(self) -> ControllerConfig:
        if self.session_absolute_timeout_s < self.session_idle_timeout_s:
            raise ValueError("session_absolute_timeout_s must not be shorter than session_idle_timeout_s")
        return self

    @property
    def sso_enabled(self) -> bool:
        return bool(self.sso_issuer)

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'controller.db'}"

    @property
    def effective_secret_key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

    @property
    def effective_media_secret_file(self) -> Path:
        return self.media_secret_file or self.data_dir / "media-secret.key"


def load_secret_key(path: Path) -> bytes:
    """The server's secret key, generated on first start (mode 0600). Called before the event loop runs."""
    try:
        raw = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(raw + "\n")
        logger.info("generated a new secret key in %s", path)
    except OSError as exc:
        raise ConfigError(f"cannot read the secret key file {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise ConfigError(f"the secret key file {path} does not hold a hex key") from None
    if len(key) < 32:
        raise ConfigError(f"the secret key in {path} is too short (need 32 bytes)")
    return key
