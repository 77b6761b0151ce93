"""The edge agent's configuration: a TOML file overlaid by KETNOI_AGENT_* environment variables.

Loaded with `load_agent_config(path)`; every password is registered with the process-wide log filter as soon
as it is read, so that no log line can carry it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from agents.health.config import HealthConfig
from agents.live.config import LiveConfig
from agents.networks import MAX_TARGETS, TargetError, check_target, expand_targets
from agents.recording.config import RecordingConfig
from agents.storage.config import RetentionConfig
from common.config import ConfigError, load_config
from common.logs import SECRETS

ENV_PREFIX = "KETNOI_AGENT"


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR form: {exc}") from None


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _target(value: str) -> str:
    try:
        return check_target(value)
    except TargetError as exc:
        raise ValueError(str(exc)) from None


Cidr = Annotated[str, AfterValidator(_cidr)]
Address = Annotated[str, AfterValidator(_address)]
Target = Annotated[str, AfterValidator(_target)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(Strict):
    """A username and password for ONVIF; the password given inline, from a file, or from an environment variable."""

    username: str = Field(default="admin", min_length=1, max_length=128, description="ONVIF user name")
    password: SecretStr | None = Field(default=None, description="the password itself (prefer password_file)")
    password_file: Path | None = Field(default=None, description="a file whose first line is the password")
    password_env: str | None = Field(default=None, description="the name of an environment variable holding it")

    @model_validator(mode="after")
    def _one_source(self) -> Credentials:
        given = [x for x in (self.password, self.password_file, self.password_env) if x is not None]
        if len(given) > 1:
            raise ValueError("give the password one way only: password, password_file or password_env")
        return self

    def resolve_password(self, environ: Mapping[str, str] | None = None) -> str:
        """The password from whichever source was configured ('' when none), registered with the log filter."""
        if self.password is not None:
            secret = self.password.get_secret_value()
        elif self.password_file is not None:
            try:
                lines = self.password_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"cannot read password_file {self.password_file}: {exc.strerror}") from None
            secret = lines[0] if lines else ""
        elif self.password_env is not None:
            env = os.environ if environ is None else environ
            if self.password_env not in env:
                raise ConfigError(f"password_env names {self.password_env}, which is not set")
            secret = env[self.password_env]
        else:
            secret = ""
        SECRETS.add(secret)
        return secret


class CameraCredentials(Credentials):
    """Credentials for one camera, overriding the site's."""

    match: str = Field(
        min_length=1, max_length=256, description="the camera's endpoint reference (urn:uuid:...) or IP address"
    )


class Site(Strict):
    camera_networks: list[Cidr] = Field(
        min_length=1,
        max_length=64,
        description="networks the site's cameras live on; devices outside them wait for a technician's approval",
    )
    probe_address: Address | None = Field(
        default=None,
        description="address of the site interface to probe from (multicast leaves through it); default: all",
    )
    multicast: bool = Field(default=True, description="send the multicast probe (off: unicast targets only)")
    multicast_ttl: int = Field(default=1, ge=1, le=8, description="TTL of the multicast probe")
    unicast_targets: list[Target] = Field(
        default_factory=list,
        max_length=256,
        description='addresses and ranges probed by unicast, e.g. "198.18.3.10", "198.18.3.0/28", '
        '"198.18.3.10-198.18.3.40" (for networks that drop multicast)',
    )
    unicast_rate_per_s: float = Field(default=500.0, gt=0, le=10_000, description="unicast probes sent per second")

    @model_validator(mode="after")
    def _targets_capped(self) -> Site:
        try:
            expand_targets(self.unicast_targets, MAX_TARGETS)
        except TargetError as exc:
            raise ValueError(str(exc)) from None
        return self


class Timeouts(Strict):
    probe_wait_s: float = Field(default=2.0, gt=0, le=30, description="how long to collect WS-Discovery replies")
    device_deadline_s: float = Field(
        default=10.0, gt=0, le=120, description="all ONVIF calls to one device must finish within this"
    )
    max_concurrent_devices: int = Field(default=16, ge=1, le=256, description="devices interrogated at once")
    max_response_bytes: int = Field(
        default=1024 * 1024, ge=16 * 1024, le=16 * 1024 * 1024, description="largest SOAP reply read from a device"
    )


class AgentConfig(Strict):
    state_dir: Path = Field(
        default=Path("/var/lib/ketnoi-agent"), description="where the inventory database and the agent token live"
    )
    site: Site = Field(description="the site network: camera networks, probe interface, unicast targets")
    credentials: Credentials = Field(default_factory=Credentials, description="the site's ONVIF credentials")
    camera_credentials: list[CameraCredentials] = Field(
        default_factory=list, max_length=1024, description="per-camera overrides, keyed by endpoint ref or address"
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="bounds on discovery and interrogation")
    rediscovery_interval_s: float = Field(default=300.0, ge=5, le=86_400, description="seconds between passes")
    controller_url: str | None = Field(
        default=None, max_length=2048, description="the controller (set by enrolment if omitted)"
    )
    health_host: str = Field(default="127.0.0.1", description="address of the local /healthz endpoint")
    health_port: int = Field(default=8470, ge=0, le=65535, description="port of the local /healthz (0: any)")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="log level")
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="recordings kept by age per camera and a free-space floor"
    )
    health: HealthConfig = Field(default_factory=HealthConfig, description="image health on sampled keyframes")
    recording: RecordingConfig = Field(
        default_factory=RecordingConfig, description="continuous recording of the cameras' main streams"
    )
    live: LiveConfig = Field(
        default_factory=LiveConfig, description="live view: publishing cameras to media nodes over WHIP"
    )


def load_agent_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """The validated configuration; passwords are read now (ConfigError if unreadable) and registered."""
    config = load_config(AgentConfig, path, ENV_PREFIX, environ)
    config.credentials.resolve_password(environ)
    for override in config.camera_credentials:
        override.resolve_password(environ)
    return config
