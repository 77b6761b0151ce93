"""The controller's client for a media node's control endpoint (`CloseRequest` to `{control_url}/control/close`).

One aiohttp ClientSession for the process (opened and closed by the app's cleanup context); every request
carries the node bearer derived from the shared media secret and has a short deadline, since it is called when a
grant is revoked and must not hang the revocation behind a dead node.
"""

from __future__ import annotations

import logging

import aiohttp
from pydantic import ValidationError

from protocol.media import CONTROL_CLOSE_PATH, CloseRequest, CloseResult, node_bearer

logger = logging.getLogger(__name__)

CONTROL_TIMEOUT_S = 3.0


class ControlError(Exception):
    """The node could not be told (unreachable, refused, or a bad answer)."""


class NodeControl:
    def __init__(self, secret: bytes, timeout_s: float = CONTROL_TIMEOUT_S) -> None:
        self._bearer = node_bearer(secret)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def close(self, node_id: str, control_url: str, request: CloseRequest) -> CloseResult:
        """Ask the node to close view sessions, participants or rooms; raises ControlError."""
        if self._http is None:
            raise ControlError("the control client is not started")
        url = control_url.rstrip("/") + CONTROL_CLOSE_PATH
        headers = {"Authorization": f"Bearer {self._bearer}"}
        try:
            async with self._http.post(url, data=request.model_dump_json(), headers=headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise ControlError(f"media node {node_id} answered {response.status} to a close request")
                result = CloseResult.model_validate_json(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ControlError(f"media node {node_id} could not be reached: {type(exc).__name__}") from exc
        except ValidationError as exc:
            raise ControlError(f"media node {node_id} gave a malformed close result") from exc
        logger.info("media node %s: closed %s (%s)", node_id, result.closed, request.reason)
        return result
