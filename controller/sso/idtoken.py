"""Validating the provider's ID token with joserfc: signature (RS256 or ES256 only), issuer, audience, times and
nonce, with the injected clock.

The algorithm is read from the header and checked against the allow-list before any key is chosen, so `alg:
none`, HS256 made with the provider's public key as a shared secret, and anything else are refused whatever the
key set holds. A key id the key set does not know makes the provider's JWKS be fetched again once (a rotation).
A token without a key id is tried against each published key whose type and algorithm fit the header's (an RSA
key for RS256, a P-256 key for ES256; a key published for another algorithm or for encryption is never tried),
and refused when none of them verifies it (after one fresh fetch of the keys).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError, MissingClaimError
from joserfc.jwk import Key, KeySet

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
LEEWAY_S = 60
MAX_TOKEN = 16 * 1024
_KEY_FITS = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}
"""The key type (and curve) each allowed algorithm verifies with."""
_CLAIM_REASONS = {"aud": "wrong_audience", "iss": "wrong_issuer", "iat": "not_yet_valid", "nbf": "not_yet_valid"}


class IdTokenError(Exception):
    """The ID token is not acceptable; `reason` is a fixed word (never the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


KeysOf = Callable[[bool], Awaitable[KeySet]]
"""The provider's keys; True asks for a fresh fetch."""


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise IdTokenError("malformed")
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise IdTokenError("malformed") from None
    if not isinstance(header, dict):
        raise IdTokenError("malformed")
    return header


def fits(key: Key, algorithm: str) -> bool:
    """Whether `key` may verify a signature made with `algorithm` (type, curve, and its own alg and use if set)."""
    key_type, curve = _KEY_FITS[algorithm]
    if key.key_type != key_type or (curve is not None and key.get("crv") != curve):
        return False
    return key.alg in (None, algorithm) and key.get("use") in (None, "sig")


async def _decode_with_kid(token: str, kid: str, keys_of: KeysOf) -> dict[str, Any]:
    keys = await keys_of(False)
    try:
        keys.get_by_kid(kid)
    except InvalidKeyIdError:
        keys = await keys_of(True)
    try:
        return jwt.decode(token, keys, algorithms=list(ALGORITHMS)).claims
    except InvalidKeyIdError:
        raise IdTokenError("unknown_key") from None
    except JoseError:
        raise IdTokenError("bad_signature") from None


def _try_each(token: str, algorithm: str, keys: KeySet) -> dict[str, Any] | None:
    for key in keys:
        if not fits(key, algorithm):
            continue
        try:
            return jwt.decode(token, key, algorithms=[algorithm]).claims
        except JoseError:
            continue
    return None


async def _decode_without_kid(token: str, algorithm: str, keys_of: KeysOf) -> dict[str, Any]:
    """No key id: each published key that fits the algorithm, then (once) the freshly fetched ones."""
    keys = await keys_of(False)
    claims = _try_each(token, algorithm, keys)
    if claims is None:
        fresh = await keys_of(True)
        if fresh is not keys:
            claims = _try_each(token, algorithm, fresh)
    if claims is None:
        has_candidate = any(fits(key, algorithm) for key in fresh)
        raise IdTokenError("bad_signature" if has_candidate else "unknown_key")
    return claims


async def validate(
    token: str, *, keys_of: KeysOf, issuer: str, client_id: str, nonce: str, now: datetime
) -> dict[str, Any]:
    """The ID token's claims when everything holds; IdTokenError otherwise."""
    header = _header(token)
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise IdTokenError("bad_algorithm")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise IdTokenError("malformed")
    if kid is None:
        claims = await _decode_without_kid(token, algorithm, keys_of)
    else:
        claims = await _decode_with_kid(token, kid, keys_of)
    registry = jwt.JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=LEEWAY_S,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise IdTokenError("token_expired") from None
    except MissingClaimError:
        raise IdTokenError("missing_claim") from None
    except ClaimError as exc:
        raise IdTokenError(_CLAIM_REASONS.get(exc.claim, "bad_claims")) from None
    except JoseError:
        raise IdTokenError("bad_claims") from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise IdTokenError("wrong_audience")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise IdTokenError("wrong_nonce")
    return claims
