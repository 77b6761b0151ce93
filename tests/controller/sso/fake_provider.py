"""A real, in-process OpenID Connect provider on 127.0.0.1 for the single sign-on tests.

It serves discovery, the JWKS (RSA keys made with `cryptography`), authorize (redirects back with a code),
token (checks the code once, the PKCE verifier, the redirect URI and the client's secret, basic or post) and
userinfo. Switches change what the ID token looks like (claims, algorithm, key) or make an endpoint fail, and it
records what it was asked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from common.clock import Clock

CLIENT_ID = "ketnoi-controller"
CLIENT_SECRET = "s3cr3t-client-secret-value"


def new_rsa_key(kid: str) -> RSAKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return RSAKey.import_key(pem, {"kid": kid, "use": "sig", "alg": "RS256"})


def new_ec_key(kid: str) -> ECKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ECKey.import_key(pem, {"kid": kid, "use": "sig", "alg": "ES256"})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass
class Grant:
    redirect_uri: str
    challenge: str
    nonce: str
    user: dict[str, Any]


@dataclass
class FakeProvider:
    clock: Clock
    issuer: str = ""
    issuer_suffix: str = ""
    """Appended to the issuer in discovery and tokens (e.g. "/": providers that spell their issuer so)."""
    key: RSAKey = field(default_factory=lambda: new_rsa_key("k1"))
    published: list[RSAKey | ECKey] = field(default_factory=list)
    ec_key: ECKey = field(default_factory=lambda: new_ec_key("e1"))
    user: dict[str, Any] = field(default_factory=dict)
    """Who signs in next: sub, preferred_username, groups, name..."""
    tweak: dict[str, Any] = field(default_factory=dict)
    """Claims to override (or add) in the next ID tokens."""
    header: dict[str, Any] = field(default_factory=dict)
    """Header fields to override in the next ID tokens (e.g. kid)."""
    omit_kid: bool = False
    """Next ID tokens carry no `kid` in their header."""
    mode: str = "rs256"
    """rs256, es256, none (alg none, no signature), hs256 (HMAC keyed with the public key), other_key (signed with
    a key that is not published, under the published kid)."""
    token_status: int = 200
    token_stall: asyncio.Event | None = None
    """When set, the token endpoint answers only once this event is set (a provider that hangs)."""
    token_padding: int = 0
    """Bytes of padding added to the token endpoint's answer (an oversized answer)."""
    token_chunked: bool = False
    id_token_claims_only_in_userinfo: tuple[str, ...] = ()
    grants: dict[str, Grant] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    """Every code, access token and ID token handed out (to check none reaches a log)."""
    _userinfo_of: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.published = [self.key, self.ec_key]

    def rotate(self, kid: str) -> None:
        """A new signing key; the JWKS serves only it from now on."""
        self.key = new_rsa_key(kid)
        self.published = [self.key]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/userinfo", self._userinfo)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        self.seen.append("discovery")
        return web.json_response({
            "issuer": self.issuer + self.issuer_suffix,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "id_token_signing_alg_values_supported": ["RS256"],
        })  # fmt: skip

    async def _jwks(self, request: web.Request) -> web.Response:
        self.seen.append("jwks")
        return web.json_response(KeySet(list(self.published)).as_dict(private=False))

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        self.seen.append("authorize")
        q = request.query
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != CLIENT_ID
            or q.get("code_challenge_method") != "S256"
            or "openid" not in q.get("scope", "").split()
        ):
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(24)
        self.issued.append(code)
        self.grants[code] = Grant(q["redirect_uri"], q["code_challenge"], q["nonce"], dict(self.user))
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization")
        if header:
            scheme, _, encoded = header.partition(" ")
            login, _, password = base64.b64decode(encoded).decode().partition(":")
            return scheme == "Basic" and (unquote_plus(login), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)
        return form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.seen.append("token")
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.token_requests.append({**form, "auth": "basic" if "Authorization" in request.headers else "post"})
        if self.token_stall is not None:
            await self.token_stall.wait()
        if self.token_status != 200:
            return web.json_response({"error": "temporarily_unavailable"}, status=self.token_status)
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        code = form.get("code", "")
        grant = self.grants.get(code)
        if grant is None or code in self.used or form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.used.add(code)
        verifier = form.get("code_verifier", "")
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        access_token = secrets.token_urlsafe(24)
        id_token = self.id_token(grant)
        self.issued += [access_token, id_token]
        self._userinfo_of[access_token] = grant.user
        answer = {"access_token": access_token, "token_type": "Bearer", "id_token": id_token}
        if self.token_padding:
            answer["padding"] = "x" * self.token_padding
            if self.token_chunked:  # no Content-Length: the client must count as it reads
                response = web.StreamResponse(headers={"Content-Type": "application/json"})
                response.enable_chunked_encoding()
                await response.prepare(request)
                await response.write(json.dumps(answer).encode())
                await response.write_eof()
                return response
        return web.json_response(answer)

    async def _userinfo(self, request: web.Request) -> web.Response:
        self.seen.append("userinfo")
        token = request.headers.get("Authorization", "")[7:]
        user = self._userinfo_of.get(token)
        if user is None:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response(user)

    def id_token(self, grant: Grant) -> str:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer + self.issuer_suffix,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
        }
        claims |= {"nonce": grant.nonce}
        claims |= {k: v for k, v in grant.user.items() if k not in self.id_token_claims_only_in_userinfo}
        claims |= self.tweak
        header: dict[str, Any] = {"alg": "RS256", "kid": self.key.kid} | self.header
        if self.mode == "es256":
            header |= {"alg": "ES256", "kid": self.ec_key.kid}
        if self.omit_kid:
            del header["kid"]
        if self.mode == "rs256":
            return jwt.encode(header, claims, self.key, algorithms=["RS256"])
        if self.mode == "es256":
            return jwt.encode(header, claims, self.ec_key, algorithms=["ES256"])
        if self.mode == "other_key":
            return jwt.encode(header, claims, new_rsa_key(str(self.key.kid)), algorithms=["RS256"])
        if self.mode == "none":
            return f"{_b64(json.dumps(header | {'alg': 'none'}).encode())}.{_b64(json.dumps(claims).encode())}."
        assert self.mode == "hs256"
        signing_input = f"{_b64(json.dumps(header | {'alg': 'HS256'}).encode())}.{_b64(json.dumps(claims).encode())}"
        public_pem = self.key.as_pem(private=False)
        signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"
