"""The live agent connections: at most one per agent (a new one replaces the old)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSCloseCode, web

from protocol.uplink import Error, Message

logger = logging.getLogger(__name__)


class Connection:
    """One agent's WebSocket; sends are serialised so tasks can share it."""

    def __init__(self, agent_id: int, ws: web.WebSocketResponse) -> None:
        self.agent_id = agent_id
        self.ws = ws
        self._lock = asyncio.Lock()

    async def send(self, message: Message) -> None:
        async with self._lock:
            if not self.ws.closed:
                await self.ws.send_str(message.model_dump_json())

    async def close(self, reason: str, code: int = WSCloseCode.POLICY_VIOLATION) -> None:
        """Tell the agent why (a fatal Error) and close."""
        try:
            await self.send(Error(message=reason, fatal=True))
        except (ConnectionError, RuntimeError):
            logger.debug("agent %s: could not send the closing error", self.agent_id)
        await self.ws.close(code=code, message=reason[:120].encode("utf-8"))


class Hub:
    def __init__(self) -> None:
        self._connections: dict[int, Connection] = {}
        self._cleanups: set[asyncio.Task[None]] = set()

    def track(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` (a link's clean-up) as a task that outlives a cancelled handler; `drain` awaits it."""
        task = asyncio.create_task(work, name="uplink-cleanup")
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return task

    async def drain(self) -> None:
        """Wait for the clean-ups still running (before the database goes away)."""
        while self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)

    def attach(self, connection: Connection) -> Connection | None:
        """Make `connection` the agent's current one; returns the one it replaces, if any."""
        previous = self._connections.get(connection.agent_id)
        self._connections[connection.agent_id] = connection
        return previous

    def detach(self, connection: Connection) -> bool:
        """Forget `connection`; True if it was still the agent's current one (the agent is now offline)."""
        if self._connections.get(connection.agent_id) is connection:
            del self._connections[connection.agent_id]
            return True
        return False

    def get(self, agent_id: int) -> Connection | None:
        return self._connections.get(agent_id)

    def __len__(self) -> int:
        return len(self._connections)

    async def close_all(self, reason: str) -> None:
        connections = list(self._connections.values())
        await asyncio.gather(*(c.close(reason, WSCloseCode.GOING_AWAY) for c in connections), return_exceptions=True)
