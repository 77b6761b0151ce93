"""Which username and password to use for a device: its own override, else the site's."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.config import AgentConfig


@dataclass(frozen=True)
class Login:
    username: str
    password: str = field(repr=False)


class CredentialBook:
    """The site's login and the per-camera overrides, passwords resolved once at start."""

    def __init__(self, site: Login, overrides: dict[str, Login] | None = None) -> None:
        self._site = site
        self._overrides = dict(overrides or {})

    @classmethod
    def from_config(cls, config: AgentConfig) -> CredentialBook:
        site = Login(config.credentials.username, config.credentials.resolve_password())
        overrides = {o.match.strip(): Login(o.username, o.resolve_password()) for o in config.camera_credentials}
        return cls(site, overrides)

    def for_device(self, endpoint_ref: str, address: str) -> Login:
        return self._overrides.get(endpoint_ref) or self._overrides.get(address) or self._site
