"""A simulated camera's RTSP 1.0 server (RFC 2326): its pre-encoded H.264 loops over RTP, TCP-interleaved or UDP.

Paths are the profiles' (`/main`, `/sub`), and `/main265` for the same picture in H.265 (simulator.hevc).
Requests other than OPTIONS need the camera's credentials (Digest or Basic) unless the camera has the no_auth
quirk. Many clients cost little: each profile is paced by one task that hands the same packetized frames to
every session (see rtsp_feed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

from common.logs import SECRETS
from simulator.hevc import MAIN_H265, HevcFeed
from simulator.rtsp_auth import RtspAuth
from simulator.rtsp_feed import WRITE_BUFFER_LIMIT, StreamFeed
from simulator.rtsp_message import MAX_HEADER_BYTES
from simulator.rtsp_session import RtspConnection, RtspStats, ServerContext
from simulator.spec import CameraSpec
from simulator.video import PROFILES

logger = logging.getLogger(__name__)

__all__ = ["RtspServer", "RtspStats"]

SEND_BUFFER_BYTES = 256 * 1024


class RtspServer:
    """The RTSP service of one simulated camera, on spec.host:spec.rtsp_port."""

    def __init__(
        self,
        spec: CameraSpec,
        *,
        cache_dir: Path | None = None,
        max_sessions: int = 64,
        max_connections: int = 128,
        session_timeout_s: float = 60.0,
        header_timeout_s: float = 10.0,
        write_buffer_limit: int = WRITE_BUFFER_LIMIT,
    ) -> None:
        self.spec = spec
        if spec.password:
            SECRETS.add(spec.password)
        self._max_connections = max_connections
        self._feeds = {profile.path: StreamFeed(spec.name, profile, cache_dir) for profile in PROFILES}
        self._feeds[MAIN_H265.path] = HevcFeed(spec.name, MAIN_H265, cache_dir)  # RTSP only (see simulator.hevc)
        self._ctx = ServerContext(
            spec=spec,
            auth=RtspAuth(spec.username, spec.password, realm="ketnoi-camera", enabled=not spec.quirks.no_auth),
            feeds=self._feeds,
            base_url=f"rtsp://{_host_for_url(spec.host)}:{spec.rtsp_port}",
            max_sessions=max_sessions,
            session_timeout_s=session_timeout_s,
            header_timeout_s=header_timeout_s,
            write_buffer_limit=write_buffer_limit,
        )
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], RtspConnection] = {}

    @property
    def stats(self) -> RtspStats:
        return self._ctx.stats

    @property
    def sessions_opened(self) -> int:
        return self._ctx.stats.sessions_opened

    @property
    def sessions_active(self) -> int:
        return self._ctx.stats.sessions_active

    @property
    def bytes_sent(self) -> int:
        return self._ctx.stats.bytes_sent

    @property
    def port(self) -> int:
        """The port actually bound (differs from spec.rtsp_port when that is 0)."""
        if self._server is None or not self._server.sockets:
            return self.spec.rtsp_port
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str) -> str:
        """rtsp://host:port/path, without credentials."""
        return f"rtsp://{_host_for_url(self.spec.host)}:{self.port}/{path.lstrip('/')}"

    async def start(self) -> None:
        """Listen. Instant: the loops are encoded (or read from the cache) when a client first asks for them."""
        self._server = await asyncio.start_server(
            self._accept, self.spec.host, self.spec.rtsp_port, limit=MAX_HEADER_BYTES, reuse_address=True
        )
        self._ctx.base_url = f"rtsp://{_host_for_url(self.spec.host)}:{self.port}"
        logger.debug("%s: RTSP listening on %s", self.spec.name, self._ctx.base_url)

    async def stop(self) -> None:
        """Stop listening, close every connection and session, and stop the pacing tasks."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            connection.abort()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for feed in self._feeds.values():
            await feed.stop()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        stats = self._ctx.stats
        if (
            task is None
            or self.spec.quirks.refuse_connections
            or self._server is None
            or len(self._connections) >= self._max_connections
        ):
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # A camera-sized kernel buffer: a stalled reader is noticed (and skipped) within about a second.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        connection = RtspConnection(self._ctx, reader, writer)
        self._connections[task] = connection
        stats.connections_opened += 1
        stats.connections_active += 1
        try:
            await connection.serve()
        except Exception:
            logger.exception("%s: RTSP connection failed", self.spec.name)
        finally:
            stats.connections_active -= 1
            del self._connections[task]


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
