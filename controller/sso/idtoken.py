"""Validating the provider's ID token with joserfc: signature (RS256 or ES256 only), issuer, audience, times and
nonce, with the injected clock.

The algorithm is read from the header and checked against the allow-list before any key is chosen, so `alg:
none`, HS256 made with the provider's public key as a shared secret, and anything else are refused whatever the
key set holds. A key id the key set does not know makes the provider's JWKS be fetched again once (a rotation).
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
from joserfc.jwk import KeySet

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
LEEWAY_S = 60
MAX_TOKEN = 16 * 1024
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
    keys = await keys_of(False)
    try:
        keys.get_by_kid(kid)
    except InvalidKeyIdError:
        keys = await keys_of(True)
    try:
        decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
    except InvalidKeyIdError:
        raise IdTokenError("unknown_key") from None
    except JoseError:
        raise IdTokenError("bad_signature") from None
    claims = decoded.claims
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
