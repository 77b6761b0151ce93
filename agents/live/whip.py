"""The WHIP client (RFC 9725): POST an SDP offer with a bearer token, get the answer and the session's URL.

The token is single use and never logged. The session URL (`Location`, possibly relative) is what `delete()`
ends. Refusals come back as `WhipRefused` with the node's reason (its JSON `reason` when it gives one), so the
agent can report why a publication failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp

SDP_TYPE = "application/sdp"
MAX_ANSWER_BYTES = 256 * 1024


class WhipRefused(Exception):
    """The media node did not accept the offer: `status` (0: not reached) and a reason safe to report."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}" if status else reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WhipSession:
    answer: str
    resource_url: str


async def publish(http: aiohttp.ClientSession, whip_url: str, token: str, offer: str, timeout_s: float) -> WhipSession:
    """POST the offer; the answer and the resource URL, or `WhipRefused`."""
    headers = {"Content-Type": SDP_TYPE, "Authorization": f"Bearer {token}"}
    try:
        async with http.post(
            whip_url, data=offer.encode(), headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
            if response.status != 201:
                raise WhipRefused(response.status, _reason(body, response.reason or ""))
            location = response.headers.get("Location")
            if not location:
                raise WhipRefused(response.status, "the media node sent no Location for the session")
            if response.content_type != SDP_TYPE or len(body) > MAX_ANSWER_BYTES:
                raise WhipRefused(response.status, "the media node's answer is not an SDP answer")
            return WhipSession(body.decode("utf-8", "replace"), urljoin(whip_url, location))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise WhipRefused(0, f"the media node is unreachable ({type(exc).__name__})") from None


async def delete(http: aiohttp.ClientSession, resource_url: str, timeout_s: float) -> int:
    """End the session; the HTTP status (0 when the node is not reachable: it will time the session out)."""
    try:
        async with http.delete(resource_url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0


def _reason(body: bytes, fallback: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return fallback[:200]
    if isinstance(data, dict):
        reason, message = data.get("reason"), data.get("error")
        text = f"{reason}: {message}" if reason and message else str(message or reason or fallback)
        return text[:200]
    return fallback[:200]
