"""The media-node side of the controller in one object: the registry and placement, the token signer, ICE
servers and the control client. Live view and meetings reach it through `MEDIA_NODES` on the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from common.clock import Clock
from controller.config import ControllerConfig, load_secret_key
from controller.medianodes.control import NodeControl
from controller.medianodes.ice import IceServers, load_turn_secret
from controller.medianodes.registry import NodeRegistry
from protocol.media import IceServer, MediaTokens


class MediaNodes:
    def __init__(
        self, secret: bytes, clock: Clock, *, token_ttl: timedelta, ice: IceServers, interval_s: float | None = None
    ) -> None:
        self.secret = secret
        """The shared media secret (never logged or shown)."""
        self.registry = NodeRegistry(clock) if interval_s is None else NodeRegistry(clock, interval_s)
        self.tokens = MediaTokens(secret, clock)
        self.token_ttl = token_ttl
        self.control = NodeControl(secret)
        self._ice = ice

    @classmethod
    def from_config(cls, config: ControllerConfig, clock: Clock) -> MediaNodes:
        """Reads (or generates, mode 0600) the media secret and reads the TURN secret: call before serving."""
        secret = load_secret_key(config.effective_media_secret_file)
        ice = IceServers(
            config.turn_urls, load_turn_secret(config.turn_secret_file), timedelta(seconds=config.turn_ttl_s), clock
        )
        return cls(secret, clock, token_ttl=timedelta(seconds=config.media_token_ttl_s), ice=ice)

    def ice_servers(self, subject: str) -> list[IceServer]:
        """ICE servers with fresh TURN credentials for `subject`; empty when none are configured."""
        return self._ice.for_subject(subject)


MEDIA_NODES: web.AppKey[MediaNodes] = web.AppKey("media_nodes", MediaNodes)


async def media_nodes_ctx(app: web.Application) -> AsyncIterator[None]:
    """Owns the control client's HTTP session."""
    control = app[MEDIA_NODES].control
    await control.start()
    yield
    await control.stop()
