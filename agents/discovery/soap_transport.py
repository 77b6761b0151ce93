"""A zeep transport for untrusted devices: bodies read in chunks up to a cap, DTDs refused before parsing.

onvif-zeep-async's AIOHTTPTransport reads every reply whole (`response.read()`), so a device answering with
tens of megabytes would have them all in memory; this subclass streams the body and stops at the cap, refuses
any DOCTYPE (hence entity declarations and external references) with a reason, and turns HTTP 401/403 into
AuthFailed. It never loads anything by URL: the WSDLs are the package's local files, parsed once.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
from onvif.zeep_aiohttp import AIOHTTPTransport
from zeep.wsdl.utils import etree_to_string

from agents.discovery.errors import AuthFailed, HostileReply, Unreachable

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_DOCTYPE = re.compile(rb"<!\s*DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)
_EXTERNAL = re.compile(rb"<!\s*ENTITY[^>]*\b(SYSTEM|PUBLIC)\b", re.IGNORECASE)


def refuse_dtd(content: bytes) -> None:
    """HostileReply when the document declares a DTD; says which kind (external, entities, plain DTD)."""
    if not _DOCTYPE.search(content) and not _ENTITY.search(content):
        return
    if _EXTERNAL.search(content):
        raise HostileReply("hostile reply refused: external entity reference")
    if _ENTITY.search(content):
        raise HostileReply("hostile reply refused: entity declarations")
    raise HostileReply("hostile reply refused: DTD")


class CappedTransport(AIOHTTPTransport):  # type: ignore[misc]
    """POSTs SOAP envelopes through a shared aiohttp session, reading at most `max_bytes` of each reply."""

    def __init__(self, session: aiohttp.ClientSession, max_bytes: int) -> None:
        super().__init__(session=session, verify_ssl=False, cache=None)
        self.max_bytes = max_bytes

    async def _post_internal(
        self, address: str, message: str | bytes, headers: dict[str, str]
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/soap+xml; charset=utf-8")
        headers["Accept-Encoding"] = "identity"
        data = message.encode("utf-8") if isinstance(message, str) else message
        async with self.session.post(address, data=data, headers=headers, allow_redirects=False) as response:
            if response.status in (401, 403):
                raise AuthFailed(f"credentials refused (HTTP {response.status})")
            if response.content_length is not None and response.content_length > self.max_bytes:
                raise HostileReply(
                    f"hostile reply refused: {response.content_length} bytes announced, cap {self.max_bytes}"
                )
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.content.iter_chunked(_CHUNK):
                total += len(chunk)
                if total > self.max_bytes:
                    raise HostileReply(f"hostile reply refused: body larger than {self.max_bytes} bytes")
                chunks.append(chunk)
            if 300 <= response.status < 400:
                raise Unreachable(f"unexpected redirect (HTTP {response.status})")
        content = b"".join(chunks)
        refuse_dtd(content)
        return response, content

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Any:
        message = etree_to_string(envelope)  # type: ignore[no-untyped-call]
        response, content = await self._post_internal(address, message, headers)
        return self._aiohttp_to_requests_response(response, content)

    async def post(self, address: str, message: str, headers: dict[str, str]) -> Any:
        response, content = await self._post_internal(address, message, headers)
        return self._aiohttp_to_httpx_response(response, content)

    async def get(self, address: str, params: Any = None, headers: Any = None) -> Any:
        raise Unreachable("the agent does not fetch documents from devices")

    def load(self, url: str) -> bytes:
        raise Unreachable("the agent does not load documents by URL")
