"""A fleet of simulated cameras in one process: its validated configuration and its start/stop.

Camera i (from 0) is named PREFIX+i, binds FIRST_HOST+i, and gets the quirks given for index i.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import typing
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError, field_validator

from simulator.camera import SimulatedCamera
from simulator.onvif.hostile import KINDS
from simulator.spec import CameraSpec, Quirks

logger = logging.getLogger(__name__)

_QUIRK_TYPES: dict[str, Any] = typing.get_type_hints(Quirks)


def parse_quirk(text: str) -> tuple[int, str, Any]:
    """'N:field=value' -> (N, field, typed value); the type comes from the Quirks dataclass."""
    index_text, sep, assignment = text.partition(":")
    name, eq, raw = assignment.partition("=")
    if not sep or not eq:
        raise ValueError(f"quirk {text!r} is not of the form N:field=value")
    try:
        index = int(index_text)
    except ValueError:
        raise ValueError(f"quirk {text!r}: camera index {index_text!r} is not a number") from None
    name = name.strip()
    if name not in _QUIRK_TYPES:
        raise ValueError(f"quirk {text!r}: unknown quirk {name!r} (known: {', '.join(sorted(_QUIRK_TYPES))})")
    raw = raw.strip()
    hint = _QUIRK_TYPES[name]
    if raw.lower() in {"none", "null", ""} and type(None) in typing.get_args(hint):
        return index, name, None
    try:
        value = TypeAdapter(hint).validate_python(raw)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ValueError(f"quirk {text!r}: {reason}") from None
    if name == "hostile_soap" and value not in KINDS:
        raise ValueError(f"quirk {text!r}: hostile_soap is one of {', '.join(sorted(KINDS))}")
    return index, name, value


class FleetConfig(BaseModel):
    """What `python -m simulator` runs (file, environment KETNOI_SIM_*, then command-line flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: int = Field(1, ge=1, le=1000, description="How many cameras to run.")
    first_host: ipaddress.IPv4Address = Field(
        ipaddress.IPv4Address("127.0.1.1"),
        description="Camera i binds this address plus i; outside 127.0.0.0/8 the addresses must exist.",
    )
    http_port: int = Field(8080, ge=1, le=65535, description="ONVIF and snapshot HTTP port on every camera.")
    rtsp_port: int = Field(8554, ge=1, le=65535, description="RTSP port on every camera.")
    username: str = Field("admin", min_length=1, max_length=64, description="The cameras' user name.")
    password: SecretStr | None = Field(None, description="The cameras' password (environment only, never a flag).")
    password_file: Path | None = Field(None, description="A file holding the cameras' password.")
    no_auth: bool = Field(False, description="Run every camera without authentication.")
    name_prefix: str = Field("cam", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="Camera i is named PREFIX+i.")
    cache_dir: Path | None = Field(None, description="Where encoded H.264 loops are cached between runs.")
    quirks: tuple[str, ...] = Field((), description="Quirks as N:field=value, applied to camera N.")
    log_level: str = Field("WARNING", pattern=r"^(?i:debug|info|warning|error)$", description="Log level.")

    @field_validator("quirks")
    @classmethod
    def _check_quirks(cls, quirks: tuple[str, ...]) -> tuple[str, ...]:
        for quirk in quirks:
            parse_quirk(quirk)
        return quirks

    def host(self, index: int) -> str:
        address = self.first_host + index
        if address.is_multicast or address.is_unspecified or address.is_reserved:
            raise ValueError(f"camera {index} would bind {address}, which is not a host address")
        return str(address)

    def quirks_for(self, index: int) -> Quirks:
        quirks = Quirks(no_auth=self.no_auth)
        for text in self.quirks:
            n, name, value = parse_quirk(text)
            if n == index:
                quirks = dataclasses.replace(quirks, **{name: value})
        return quirks

    def specs(self, password: str) -> list[CameraSpec]:
        for text in self.quirks:
            n = parse_quirk(text)[0]
            if not 0 <= n < self.cameras:
                raise ValueError(f"quirk {text!r} is for camera {n}, but cameras are numbered 0 to {self.cameras - 1}")
        return [
            CameraSpec(
                name=f"{self.name_prefix}{i}",
                host=self.host(i),
                http_port=self.http_port,
                rtsp_port=self.rtsp_port,
                username=self.username,
                password=password,
                serial=f"KN{i:06d}",
                quirks=self.quirks_for(i),
            )
            for i in range(self.cameras)
        ]


class Fleet:
    """Starts cameras one after another (each takes about a millisecond) and stops them all."""

    def __init__(self, specs: list[CameraSpec], *, cache_dir: Path | None = None) -> None:
        self.cameras = [SimulatedCamera(spec, cache_dir=cache_dir) for spec in specs]
        self._started: list[SimulatedCamera] = []

    async def start(self) -> None:
        try:
            for camera in self.cameras:
                await camera.start()
                self._started.append(camera)
        except BaseException:
            await self.stop()
            raise
        logger.info("%d simulated cameras running", len(self._started))

    async def stop(self) -> None:
        """Stop every started camera (each says Bye)."""
        while self._started:
            await self._started.pop().stop()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
