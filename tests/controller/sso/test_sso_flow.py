"""Single sign-on through the real controller app and a real fake provider on 127.0.0.1 (redirects by hand)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from yarl import URL

from common.clock import ManualClock
from controller import state
from controller.db.models import Role, SsoLink, User
from controller.sso import links as sso_links
from controller.sso.routes import CALLBACK_PATH
from tests.controller.conftest import ORIGIN, PASSWORD, POSTGRES_URL, AiohttpClient, Client
from tests.controller.sso.fake_provider import CLIENT_ID, CLIENT_SECRET, FakeProvider
from tests.controller.sso.world import (
    ADMINS,
    TEACHERS,
    TECHS,
    Setup,
    audit_of,
    authorize,
    reason_of,
    setup_sso,
    sign_in_sso,
    to_provider,
    whoami,
)
from tests.ports import free_port


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post"])
async def test_first_sign_in_creates_the_user_with_the_mapped_scoped_role_and_a_session(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider, auth: str
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, sso_client_auth=auth)
    client = setup.client
    assert (await client.get("/api/session")).status == 401
    location = URL(await to_provider(client, "/my/sessions?week=1"))
    assert location.query["code_challenge_method"] == "S256" and location.query["client_id"] == CLIENT_ID
    assert location.query["redirect_uri"] == "http://controller.test/signin/sso/callback"
    back = await authorize(str(location))
    response = await client.get(back.path_qs, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/my/sessions?week=1"
    cookie = response.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookie if c.startswith("ketnoi_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert any(c.startswith("ketnoi_sso=") and "Max-Age=0" in c for c in cookie)  # the attempt is over

    me = await whoami(client)
    assert (me["username"], me["role"], me["unit_id"]) == ("nguyen.van.a", "teacher", setup.world.school)
    request = fake.token_requests[-1]
    assert request["auth"] == ("basic" if auth == "client_secret_basic" else "post")
    assert request["code_verifier"] and request["redirect_uri"].endswith(CALLBACK_PATH)
    async with setup.app[state.DB]() as session:
        user = (await session.execute(select(User).where(User.username == "nguyen.van.a"))).scalar_one()
        link = (await session.execute(select(SsoLink).where(SsoLink.user_id == user.id))).scalar_one()
    assert user.display_name == "Nguyễn Văn A" and user.password_hash == sso_links.NO_PASSWORD
    assert (link.issuer, link.subject, link.created_by) == (fake.issuer, "sub-0001", "system:sso")
    created = await audit_of(setup.app, "user.create")
    assert [(e.actor, e.details["via"], e.details["role"]) for e in created] == [("system:sso", "sso", "teacher")]
    signins = await audit_of(setup.app, "signin.sso")
    assert [(e.actor, e.action) for e in signins] == [("user:nguyen.van.a", "signin.sso")]


async def test_the_flow_and_a_role_change_on_postgresql(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider, pg_schema: str
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, database_url=POSTGRES_URL, database_schema=pg_schema)
    assert (await sign_in_sso(setup.client)).status == 303
    fake.user["groups"] = [TECHS]
    assert (await sign_in_sso(setup.client)).status == 303
    me = await whoami(setup.client)
    assert (me["username"], me["role"], me["unit_id"]) == ("nguyen.van.a", "district_technician", 2)
    assert [e.action for e in await audit_of(setup.app, "role.change")] == ["role.change"]
    assert len(await audit_of(setup.app, "signin.sso")) == 2


async def test_role_changes_from_the_provider_apply_at_each_sign_in_and_are_audited(sso: Setup) -> None:
    client, fake = sso.client, sso.fake
    assert (await sign_in_sso(client)).status == 303
    first = (await whoami(client))["csrf_token"]
    fake.user["groups"] = [TECHS]
    response = await sign_in_sso(client)
    assert response.status == 303 and response.headers["Location"] == "/"
    me = await whoami(client)
    assert (me["role"], me["unit_id"]) == ("district_technician", sso.world.district)
    assert me["csrf_token"] != first  # a new session
    changes = await audit_of(sso.app, "role.change")
    assert len(changes) == 1
    assert changes[0].actor == "system:sso" and changes[0].target == "user:nguyen.van.a"
    assert changes[0].details["before"] == {"role": "teacher", "unit_id": sso.world.school}
    assert changes[0].details["after"] == {"role": "district_technician", "unit_id": sso.world.district}
    assert changes[0].details["via"] == "sso" and changes[0].details["group"] == TECHS
    # The same groups again: no change, no entry.
    assert (await sign_in_sso(client)).status == 303
    assert len(await audit_of(sso.app, "role.change")) == 1
    # The first matching entry of the map wins (admins are listed first).
    fake.user["groups"] = [TEACHERS, ADMINS]
    assert (await sign_in_sso(client)).status == 303
    assert (await whoami(client))["role"] == "admin"


async def test_a_person_in_no_mapped_group_is_refused(sso: Setup) -> None:
    sso.fake.user["groups"] = ["all-staff", "canteen"]
    response = await sign_in_sso(sso.client)
    assert response.status == 403
    page = await response.text()
    assert reason_of(page) == "no_role" and "không thuộc nhóm nào" in page
    assert (await sso.client.get("/api/session")).status == 401
    failed = await audit_of(sso.app, "signin.sso.failed")
    assert [e.details["reason"] for e in failed] == ["no_role"] and failed[0].details["subject"] == "sub-0001"
    async with sso.app[state.DB]() as session:
        assert (await session.execute(select(User).where(User.username == "nguyen.van.a"))).first() is None


async def test_without_user_creation_only_linked_users_sign_in(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, sso_create_users=False)
    response = await sign_in_sso(setup.client)
    assert response.status == 403 and reason_of(await response.text()) == "unknown_user"
    async with setup.app[state.DB].begin() as session:
        teacher = (await session.execute(select(User).where(User.username == setup.world.teacher))).scalar_one()
        await sso_links.link(session, teacher, fake.issuer, "sub-0001", actor="test", now=clock.now(), address=None)
    assert (await sign_in_sso(setup.client)).status == 303
    me = await whoami(setup.client)
    assert (me["username"], me["role"]) == (setup.world.teacher, Role.TEACHER.value)


async def test_disabled_users_and_the_last_administrator_are_protected(sso: Setup) -> None:
    sso.fake.user["groups"] = [ADMINS]
    assert (await sign_in_sso(sso.client)).status == 303
    async with sso.app[state.DB].begin() as session:
        other = (await session.execute(select(User).where(User.username == sso.world.admin))).scalar_one()
        other.disabled = True  # the SSO user is now the only active administrator
    sso.fake.user["groups"] = [TEACHERS]
    response = await sign_in_sso(sso.client)
    assert response.status == 409 and reason_of(await response.text()) == "last_admin"
    assert await audit_of(sso.app, "role.change") == []
    async with sso.app[state.DB].begin() as session:
        user = (await session.execute(select(User).where(User.username == "nguyen.van.a"))).scalar_one()
        assert user.role is Role.ADMIN
        user.disabled = True
    sso.fake.user["groups"] = [ADMINS]
    response = await sign_in_sso(sso.client)
    assert response.status == 403 and reason_of(await response.text()) == "disabled"


async def test_a_linked_account_has_no_password_to_sign_in_with(sso: Setup) -> None:
    assert (await sign_in_sso(sso.client)).status == 303
    async with sso.app[state.DB]() as session:
        marker = (await session.execute(select(User.password_hash).where(User.username == "nguyen.van.a"))).scalar_one()
    form = {"username": "nguyen.van.a", "password": marker, "next": "/"}
    other = await sso.client.post("/signin", data=form, headers=ORIGIN, allow_redirects=False)
    assert other.status == 401


async def test_a_provider_name_taken_by_an_unlinked_local_account_is_refused(sso: Setup) -> None:
    sso.fake.user["preferred_username"] = sso.world.admin  # a local administrator's name
    sso.fake.user["groups"] = [ADMINS]
    response = await sign_in_sso(sso.client)
    assert response.status == 403 and reason_of(await response.text()) == "not_linked"
    assert (await sso.client.get("/api/session")).status == 401


async def test_a_wrong_or_missing_state_is_refused(sso: Setup) -> None:
    back = await authorize(await to_provider(sso.client))
    forged = back.update_query(state="x" * 43)
    response = await sso.client.get(forged.path_qs, allow_redirects=False)
    assert response.status == 400 and reason_of(await response.text()) == "state"
    url = sso.client.make_url(back.path_qs)
    # Another browser (no attempt cookie) with the real code and state: refused too.
    async with aiohttp.ClientSession() as other:
        async with other.get(url, allow_redirects=False) as response:
            assert response.status == 400 and reason_of(await response.text()) == "no_attempt"
        # A forged attempt cookie is no attempt either.
        async with other.get(url, allow_redirects=False, headers={"Cookie": "ketnoi_sso=eyJ.forged"}) as response:
            assert response.status == 400 and reason_of(await response.text()) == "no_attempt"
    assert "token" not in sso.fake.seen  # no code was traded
    assert len(await audit_of(sso.app, "signin.sso.failed")) == 3


async def test_callbacks_are_rate_limited_like_password_sign_ins(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, login_attempts_per_minute=3)
    back = await authorize(await to_provider(setup.client))
    replay = back.update_query(state="forged")
    for _ in range(3):
        assert (await setup.client.get(replay.path_qs, allow_redirects=False)).status == 400
    response = await setup.client.get(back.path_qs, allow_redirects=False)
    assert response.status == 429 and reason_of(await response.text()) == "too_many"
    assert "token" not in fake.seen


async def test_with_secure_cookies_the_attempt_cookie_is_host_prefixed_and_secure(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, cookie_secure=True)
    response = await setup.client.get("/signin/sso", allow_redirects=False)
    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith("__Host-ketnoi_sso=") and "Secure" in set_cookie and "HttpOnly" in set_cookie
    assert "Path=/" in set_cookie and "SameSite=Lax" in set_cookie and "Max-Age=600" in set_cookie
    refused = await setup.client.get(f"{CALLBACK_PATH}?code=x&state=y", allow_redirects=False)
    deleted = refused.headers["Set-Cookie"]
    assert deleted.startswith("__Host-ketnoi_sso=") and "Max-Age=0" in deleted and "Secure" in deleted


async def test_an_attempt_older_than_ten_minutes_is_refused(sso: Setup, clock: ManualClock) -> None:
    back = await authorize(await to_provider(sso.client))
    await clock.advance(11 * 60)
    response = await sso.client.get(back.path_qs, allow_redirects=False, params={"lang": "en"})
    assert response.status == 400
    page = await response.text()
    assert reason_of(page) == "expired" and "expired" in page


async def test_a_replayed_code_is_refused(sso: Setup) -> None:
    back = await authorize(await to_provider(sso.client))
    assert (await sso.client.get(back.path_qs, allow_redirects=False)).status == 303
    # The same code again within a fresh attempt (its own state): the provider refuses it.
    new_back = await authorize(await to_provider(sso.client))
    replay = new_back.update_query(code=back.query["code"])
    response = await sso.client.get(replay.path_qs, allow_redirects=False)
    assert response.status == 400 and reason_of(await response.text()) == "refused"


@pytest.mark.parametrize(
    ("tweak", "reason"),
    [
        ({"nonce": "not-the-nonce"}, "wrong_nonce"),
        ({"aud": "another-client"}, "wrong_audience"),
        ({"aud": [CLIENT_ID, "another-client"]}, "wrong_audience"),  # several audiences and no azp
        ({"iss": "https://evil.example"}, "wrong_issuer"),
        ({"exp": 1767574800 - 3600}, "token_expired"),  # an hour before the ManualClock's start
        ({"iat": 1767574800 + 3600}, "not_yet_valid"),
        ({"sub": None}, "missing_claim"),
    ],
)
async def test_id_tokens_with_wrong_claims_are_refused(sso: Setup, tweak: dict[str, Any], reason: str) -> None:
    assert int(sso.app[state.CLOCK].now().timestamp()) == 1767574800
    sso.fake.tweak = tweak
    response = await sign_in_sso(sso.client)
    assert response.status == 403
    page = await response.text()
    assert reason_of(page) == reason and "không hợp lệ" in page
    assert (await sso.client.get("/api/session")).status == 401
    assert [e.details["reason"] for e in await audit_of(sso.app, "signin.sso.failed")] == [reason]


async def test_expiry_has_a_small_leeway(sso: Setup) -> None:
    sso.fake.tweak = {"exp": 1767574800 - 30}
    assert (await sign_in_sso(sso.client)).status == 303


async def test_an_issuer_spelt_with_a_trailing_slash_is_matched_as_the_provider_spells_it(sso: Setup) -> None:
    sso.fake.issuer_suffix = "/"
    assert (await sign_in_sso(sso.client)).status == 303
    sso.fake.tweak = {"iss": sso.fake.issuer}  # the discovery document says ".../": the slash-less one is another
    response = await sign_in_sso(sso.client)
    assert response.status == 403 and reason_of(await response.text()) == "wrong_issuer"


async def test_es256_tokens_are_accepted(sso: Setup) -> None:
    sso.fake.mode = "es256"
    assert (await sign_in_sso(sso.client)).status == 303
    assert (await whoami(sso.client))["username"] == "nguyen.van.a"


@pytest.mark.parametrize(
    ("mode", "reason"), [("none", "bad_algorithm"), ("hs256", "bad_algorithm"), ("other_key", "bad_signature")]
)
async def test_unsigned_hmac_and_badly_signed_tokens_are_refused(sso: Setup, mode: str, reason: str) -> None:
    sso.fake.mode = mode
    response = await sign_in_sso(sso.client)
    assert response.status == 403 and reason_of(await response.text()) == reason
    assert (await sso.client.get("/api/session")).status == 401


async def test_an_unknown_key_id_refetches_the_keys_once(sso: Setup, clock: ManualClock) -> None:
    fake = sso.fake
    assert (await sign_in_sso(sso.client)).status == 303
    assert fake.seen.count("jwks") == 1 and fake.seen.count("discovery") == 1  # both cached from now on
    assert (await sign_in_sso(sso.client)).status == 303
    assert fake.seen.count("jwks") == 1
    fake.rotate("k2")
    await clock.advance(61)
    assert (await sign_in_sso(sso.client)).status == 303
    assert fake.seen.count("jwks") == 2
    # A key id nobody published: one more fetch is not allowed so soon, and the token is refused.
    fake.header = {"kid": "nobody"}
    response = await sign_in_sso(sso.client)
    assert response.status == 403 and reason_of(await response.text()) == "unknown_key"
    assert fake.seen.count("jwks") == 2


async def test_roles_missing_from_the_id_token_come_from_userinfo(sso: Setup) -> None:
    sso.fake.id_token_claims_only_in_userinfo = ("groups",)
    assert (await sign_in_sso(sso.client)).status == 303
    assert "userinfo" in sso.fake.seen
    assert (await whoami(sso.client))["role"] == "teacher"


async def test_a_provider_that_is_down_gives_a_clear_page(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, sso_issuer=f"http://127.0.0.1:{free_port()}")
    response = await setup.client.get("/signin/sso", allow_redirects=False)
    assert response.status == 502
    page = await response.text()
    assert reason_of(page) == "unreachable" and "Không kết nối được" in page
    english = await setup.client.get("/signin/sso?lang=en", allow_redirects=False)
    assert english.status == 502 and "cannot be reached" in await english.text()


async def test_a_token_endpoint_error_gives_a_clear_page(sso: Setup) -> None:
    sso.fake.token_status = 503
    response = await sign_in_sso(sso.client)
    assert response.status == 502 and reason_of(await response.text()) == "unreachable"


async def test_a_provider_that_hangs_or_answers_too_much_gives_a_clear_page(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, sso_timeout_s=0.3)
    fake.token_stall = asyncio.Event()
    try:
        response = await sign_in_sso(setup.client)
    finally:
        fake.token_stall.set()
    assert response.status == 502 and reason_of(await response.text()) == "unreachable"
    fake.token_stall = None
    fake.token_padding = 300 * 1024
    for chunked in (False, True):
        fake.token_chunked = chunked
        response = await sign_in_sso(setup.client)
        assert response.status == 502 and reason_of(await response.text()) == "too_large", chunked
    fake.token_padding = 0
    assert (await sign_in_sso(setup.client)).status == 303


async def test_the_signin_page_offers_the_department_button_only_when_configured(sso: Setup, client: Client) -> None:
    assert "Đăng nhập bằng tài khoản Sở" in await (await sso.client.get("/signin")).text()
    assert "Sign in with the Department account" in await (await sso.client.get("/signin?lang=en")).text()
    plain = await client.get("/signin")
    assert "tài khoản Sở" not in await plain.text()
    off = await client.get("/signin/sso", allow_redirects=False)
    assert off.status == 404 and reason_of(await off.text()) == "not_configured"


async def test_no_secret_reaches_the_logs(sso: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await sign_in_sso(sso.client)).status == 303
    sso.fake.mode = "other_key"
    assert (await sign_in_sso(sso.client)).status == 403
    sso.fake.token_status = 400
    assert (await sign_in_sso(sso.client)).status == 400
    assert len(sso.fake.issued) >= 4
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "sso sign-in failed" in logged  # the capture did see the controller's lines
    access = [r.getMessage() for r in caplog.records if f"GET {CALLBACK_PATH}" in r.getMessage()]
    assert access and all(f"{CALLBACK_PATH}?… HTTP" in line for line in access)  # the real access log lines
    for secret in [CLIENT_SECRET, *sso.fake.issued]:
        assert secret not in logged
    # aiohttp's access log line of a callback keeps the path, not the code and state.
    line = f"GET {CALLBACK_PATH}?code=abc&state=def HTTP/1.1"
    record = logging.LogRecord("aiohttp.access", logging.INFO, "", 0, '"%s" 303', (line,), None)
    assert logging.getLogger("aiohttp.access").filter(record)
    assert "abc" not in record.getMessage() and "def" not in record.getMessage()
    assert CALLBACK_PATH in record.getMessage()


async def test_a_password_lockout_neither_blocks_nor_is_lifted_by_a_sign_in_through_the_provider(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider
) -> None:
    setup = await setup_sso(aiohttp_client, tmp_path, clock, fake, login_max_failures=2, sso_create_users=False)
    client, teacher = setup.client, setup.world.teacher
    async with setup.app[state.DB].begin() as session:
        user = (await session.execute(select(User).where(User.username == teacher))).scalar_one()
        await sso_links.link(session, user, fake.issuer, "sub-0001", actor="test", now=clock.now(), address=None)
    for _ in range(2):  # a guesser locks the password
        form = {"username": teacher, "password": "wrong guess 123", "next": "/"}
        assert (await client.post("/signin", data=form, headers=ORIGIN, allow_redirects=False)).status == 401
    async with setup.app[state.DB]() as session:
        locked_until = (await session.execute(select(User.locked_until).where(User.username == teacher))).scalar_one()
    assert locked_until is not None and locked_until > clock.now()
    assert (await sign_in_sso(client)).status == 303  # the provider vouches for the person
    assert (await whoami(client))["username"] == teacher
    async with setup.app[state.DB]() as session:
        after = (await session.execute(select(User.locked_until).where(User.username == teacher))).scalar_one()
    assert after == locked_until  # the password stays locked for the guesser
    client.session.cookie_jar.clear()
    form = {"username": teacher, "password": PASSWORD, "next": "/"}
    assert (await client.post("/signin", data=form, headers=ORIGIN, allow_redirects=False)).status == 401
    assert [e.action for e in await audit_of(setup.app, "signin")] == ["signin.failed", "signin.failed",
                                                                        "signin.sso", "signin.failed"]  # fmt: skip
