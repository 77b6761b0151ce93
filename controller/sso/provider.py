"""Talking to the OpenID Connect provider: discovery, the JWKS, the token and userinfo endpoints.

Every call has the configured deadline and a response size limit; discovery is cached for an hour and the JWKS
until a token names a key id it does not hold (then it is fetched again, at most once a minute). No secret (the
client secret, a code, a token) is ever put in a log line or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from common.clock import Clock

logger = logging.getLogger(__name__)

MAX_RESPONSE = 256 * 1024
DISCOVERY_TTL_S = 3600.0
JWKS_MIN_REFETCH_S = 60.0
_NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class ProviderError(Exception):
    """The provider could not be used (down, slow, too large or malformed an answer); `reason` is a fixed word."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    secret: str
    auth: str
    """client_secret_basic or client_secret_post."""


class Provider:
    """One provider (the configured issuer), with its cached discovery document and keys."""

    def __init__(self, issuer: str, http: aiohttp.ClientSession, clock: Clock, timeout_s: float) -> None:
        self.issuer = issuer
        self._http = http
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._metadata: Metadata | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    async def metadata(self) -> Metadata:
        now = self._clock.monotonic()
        if self._metadata is not None and now - self._metadata_at < DISCOVERY_TTL_S:
            return self._metadata
        document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration", "discovery")
        try:
            metadata = Metadata(
                issuer=_text(document, "issuer"),
                authorization_endpoint=_text(document, "authorization_endpoint"),
                token_endpoint=_text(document, "token_endpoint"),
                jwks_uri=_text(document, "jwks_uri"),
                userinfo_endpoint=document.get("userinfo_endpoint")
                if isinstance(document.get("userinfo_endpoint"), str)
                else None,
            )
        except KeyError as exc:
            raise ProviderError("bad_discovery", f"missing {exc.args[0]}") from None
        if metadata.issuer.rstrip("/") != self.issuer:
            raise ProviderError("bad_discovery", "the document names another issuer")
        self._metadata, self._metadata_at = metadata, now
        return metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's keys; `refresh` fetches them again (a token named an unknown key id)."""
        async with self._lock:
            now = self._clock.monotonic()
            stale = refresh and now - self._keys_at >= JWKS_MIN_REFETCH_S
            if self._keys is not None and not stale:
                return self._keys
            document = await self._get_json((await self.metadata()).jwks_uri, "jwks")
            try:
                keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError):
                raise ProviderError("bad_jwks") from None
            self._keys, self._keys_at = keys, now
            logger.info("sso: fetched %s keys from %s", len(keys.keys), self.issuer)
            return keys

    async def exchange(self, code: str, verifier: str, redirect_uri: str, client: ClientCredentials) -> dict[str, Any]:
        """Trade the authorization code (with the PKCE verifier) for tokens."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        form["code_verifier"] = verifier
        headers = {}
        if client.auth == "client_secret_post":
            form |= {"client_id": client.client_id, "client_secret": client.secret}
        else:
            basic = aiohttp.encode_basic_auth(_form_encode(client.client_id), _form_encode(client.secret))
            headers["Authorization"] = basic
        endpoint = (await self.metadata()).token_endpoint
        return await self._request("POST", endpoint, "token", data=form, headers=headers)

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        endpoint = (await self.metadata()).userinfo_endpoint
        if endpoint is None:
            return {}
        headers = {"Authorization": f"Bearer {access_token}"}
        return await self._request("GET", endpoint, "userinfo", headers=headers)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        return await self._request("GET", url, what)

    async def _request(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self._http.request(
                method, url, timeout=self._timeout, allow_redirects=False, **kwargs
            ) as response:
                body = await _read_limited(response)
                status = response.status
        except _NETWORK_ERRORS as exc:
            logger.warning("sso: %s call to the provider failed: %s", what, type(exc).__name__)
            raise ProviderError("unreachable", what) from None
        if len(body) > MAX_RESPONSE:
            raise ProviderError("too_large", what)
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if status != 200:
            error = document.get("error") if isinstance(document, dict) else None
            word = error if isinstance(error, str) and error.isascii() and len(error) < 64 else ""
            logger.warning("sso: %s call answered %s %s", what, status, word)
            raise ProviderError("refused" if status < 500 else "unreachable", f"{what} {status} {word}".strip())
        if not isinstance(document, dict):
            raise ProviderError("malformed", what)
        return document


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    """The body, or as soon as it is known to be too large, its first MAX_RESPONSE + 1 bytes."""
    if (response.content_length or 0) > MAX_RESPONSE:
        return b"x" * (MAX_RESPONSE + 1)
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_RESPONSE:
            break
    return bytes(body)


def _text(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise KeyError(key)
    return value


def _form_encode(value: str) -> str:
    """RFC 6749 2.3.1: the client id and secret are form-encoded before HTTP Basic."""
    return quote_plus(value)
