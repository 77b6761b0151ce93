"""ID tokens without a key id against a provider that publishes several keys, and roles read at a dotted claim
path (Keycloak's `realm_access.roles`, `resource_access.CLIENT.roles`), through the real flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from common.clock import ManualClock
from controller.sso.idtoken import fits
from controller.sso.users import claim_at, groups_of
from tests.controller.conftest import AiohttpClient
from tests.controller.sso.fake_provider import CLIENT_ID, FakeProvider, new_ec_key, new_rsa_key
from tests.controller.sso.world import TEACHERS, TECHS, Setup, reason_of, setup_sso, sign_in_sso, whoami


def _public(key: RSAKey | ECKey, **changes: str) -> RSAKey | ECKey:
    """The key as a JWKS would publish it, with some of its parameters changed (use, alg)."""
    data: dict[str, Any] = {**key.as_dict(private=False), **changes}
    return type(key).import_key(data)


async def test_a_kid_less_token_is_accepted_when_one_of_several_published_keys_verifies_it(sso: Setup) -> None:
    fake = sso.fake
    fake.published = [new_rsa_key("k0"), new_ec_key("e0"), fake.ec_key, fake.key]  # the signing key comes last
    fake.omit_kid = True
    assert (await sign_in_sso(sso.client)).status == 303
    assert (await whoami(sso.client))["username"] == "nguyen.van.a"
    fake.mode = "es256"  # an EC token is tried against the P-256 keys only, and verified by its own
    assert (await sign_in_sso(sso.client)).status == 303


async def test_a_kid_less_token_signed_by_a_key_not_published_is_refused(sso: Setup, clock: ManualClock) -> None:
    fake = sso.fake
    fake.published = [new_rsa_key("k0"), fake.key, fake.ec_key]
    fake.omit_kid = True
    fake.mode = "other_key"  # a fresh RSA key nobody published
    response = await sign_in_sso(sso.client)
    assert response.status == 403 and reason_of(await response.text()) == "bad_signature"
    assert (await sso.client.get("/api/session")).status == 401
    # After the minimum interval the keys are fetched again once (a rotation), and still no key verifies it.
    await clock.advance(61)
    jwks = fake.seen.count("jwks")
    response = await sign_in_sso(sso.client)
    assert response.status == 403 and reason_of(await response.text()) == "bad_signature"
    assert fake.seen.count("jwks") == jwks + 1


async def test_a_kid_less_token_is_never_tried_against_keys_published_for_something_else(sso: Setup) -> None:
    fake = sso.fake
    # The signing key itself, published for encryption only, or for another algorithm: not a candidate.
    for changed in ({"use": "enc"}, {"alg": "PS256"}):
        fake.published = [_public(fake.key, **changed), fake.ec_key]
        fake.omit_kid = True
        response = await sign_in_sso(sso.client)
        assert response.status == 403 and reason_of(await response.text()) == "unknown_key", changed


def test_which_keys_fit_which_algorithm() -> None:
    rsa, ec = new_rsa_key("r"), new_ec_key("e")
    assert fits(rsa, "RS256") and not fits(rsa, "ES256")
    assert fits(ec, "ES256") and not fits(ec, "RS256")
    assert not fits(_public(rsa, use="enc"), "RS256") and not fits(_public(rsa, alg="RS512"), "RS256")
    p384 = ECKey.generate_key("P-384", {"alg": "ES384"})
    assert not fits(p384, "ES256")
    bare = {k: v for k, v in rsa.as_dict(private=False).items() if k not in ("alg", "use")}
    assert fits(RSAKey.import_key(bare), "RS256")  # neither alg nor use: any RSA key may verify RS256


@pytest.mark.parametrize(
    ("path", "claims"),
    [
        ("realm_access.roles", {"realm_access": {"roles": ["offline_access", TECHS]}}),
        (f"resource_access.{CLIENT_ID}.roles", {"resource_access": {CLIENT_ID: {"roles": [TECHS]}, "x": {}}}),
        ("https://sogd.example.vn/roles", {"https://sogd.example.vn/roles": [TECHS]}),  # a dotted claim name
    ],
)
async def test_roles_are_read_at_a_dotted_claim_path(
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    clock: ManualClock,
    fake: FakeProvider,
    path: str,
    claims: dict[str, Any],
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, sso_role_claim=path)
    fake.user = {k: v for k, v in fake.user.items() if k != "groups"} | claims
    assert (await sign_in_sso(setup.client)).status == 303
    me = await whoami(setup.client)
    assert (me["role"], me["unit_id"]) == ("district_technician", setup.world.district)


async def test_a_dotted_path_found_only_in_userinfo_is_read_there(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, sso_role_claim="realm_access.roles")
    fake.user = {k: v for k, v in fake.user.items() if k != "groups"} | {"realm_access": {"roles": [TEACHERS]}}
    fake.id_token_claims_only_in_userinfo = ("realm_access",)
    assert (await sign_in_sso(setup.client)).status == 303
    assert "userinfo" in fake.seen and (await whoami(setup.client))["role"] == "teacher"


def test_the_default_claim_and_paths_that_lead_nowhere() -> None:
    claims = {"groups": ["a", 1, "b"], "realm_access": {"roles": "solo"}, "flat": "x"}
    assert groups_of(claims, "groups") == ["a", "b"]  # the default: a top-level list, non-strings dropped
    assert groups_of(claims, "realm_access.roles") == ["solo"]
    assert groups_of(claims, "realm_access.missing") == [] and groups_of(claims, "flat.deeper") == []
    assert claim_at(claims, "realm_access") == {"roles": "solo"} and claim_at(claims, "nope.x") is None
