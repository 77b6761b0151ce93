"""Linking and unlinking a Department account from the account page, and an administrator's removal of a link,
through the real app, the real fake provider on 127.0.0.1 and real databases (SQLite; PostgreSQL where marked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from yarl import URL

from common.clock import ManualClock
from controller import state
from controller.db.models import SsoLink, User
from controller.sso import links
from tests.controller.conftest import ORIGIN, POSTGRES_URL, AiohttpClient, Client, sign_in
from tests.controller.sso.fake_provider import FakeProvider
from tests.controller.sso.world import TEACHERS, Setup, audit_of, authorize, reason_of, setup_sso, sign_in_sso, whoami


async def _link_from_account_page(client: Client, csrf: str) -> tuple[int, str]:
    """Press "link" on /account, sign in at the provider, come back: the callback's status and Location."""
    started = await client.post("/account/sso/link", data={"csrf_token": csrf}, headers=ORIGIN, allow_redirects=False)
    assert started.status == 302, await started.text()
    location = URL(started.headers["Location"])
    assert location.query["prompt"] == "login"  # the person picks the account to link at the provider
    back = await authorize(str(location))
    response = await client.get(back.path_qs, allow_redirects=False)
    return response.status, response.headers.get("Location", await response.text())


async def _links_of(setup: Setup, username: str) -> list[SsoLink]:
    async with setup.app[state.DB]() as session:
        query = select(SsoLink).join(User, User.id == SsoLink.user_id).where(User.username == username)
        return list((await session.execute(query)).scalars())


async def _user_id(setup: Setup, username: str) -> int:
    async with setup.app[state.DB]() as session:
        return (await session.execute(select(User.id).where(User.username == username))).scalar_one()


async def test_a_user_links_from_the_account_page_then_signs_in_by_sso_as_themself(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider
) -> None:
    await _link_then_sign_in(await setup_sso(aiohttp_client, tmp_path, clock, fake, sso_create_users=False))


@pytest.mark.postgres
async def test_linking_then_signing_in_on_postgresql(
    aiohttp_client: AiohttpClient, tmp_path: Path, clock: ManualClock, fake: FakeProvider, pg_schema: str
) -> None:
    database = {"database_url": POSTGRES_URL, "database_schema": pg_schema}
    await _link_then_sign_in(await setup_sso(aiohttp_client, tmp_path, clock, fake, sso_create_users=False, **database))


async def _link_then_sign_in(setup: Setup) -> None:
    client, teacher, fake = setup.client, setup.world.teacher, setup.fake
    refused = await sign_in_sso(client)  # not linked yet, and no user creation
    assert refused.status == 403 and reason_of(await refused.text()) == "unknown_user"

    csrf = await sign_in(client, teacher)
    page = await (await client.get("/account")).text()
    assert "Chưa liên kết tài khoản Sở nào." in page and "Mật khẩu: có" in page
    assert await _link_from_account_page(client, csrf) == (303, "/account?done=linked")
    page = await (await client.get("/account?done=linked")).text()
    assert "Đã liên kết tài khoản Sở." in page and "sub-0001" in page
    english = await (await client.get("/account?lang=en")).text()
    assert "Linked Department accounts" in english and "Unlink" in english
    [made] = await _links_of(setup, teacher)
    assert (made.issuer, made.subject, made.created_by) == (fake.issuer, "sub-0001", f"user:{teacher}")
    [entry] = await audit_of(setup.app, "sso.link")
    assert (entry.actor, entry.target, entry.details["subject"]) == (f"user:{teacher}", f"user:{teacher}", "sub-0001")

    client.session.cookie_jar.clear()  # another day, another browser: the Department account signs in
    assert (await sign_in_sso(client)).status == 303
    assert (await whoami(client))["username"] == teacher
    await sign_in(client, teacher)  # and the password still works: a link is another way in


async def test_a_subject_linked_to_another_user_is_refused_with_a_message(sso: Setup) -> None:
    async with sso.app[state.DB].begin() as session:
        tech = (await session.execute(select(User).where(User.username == sso.world.technician))).scalar_one()
        await links.link(session, tech, sso.fake.issuer, "sub-0001", actor="cli", now=sso.app[state.CLOCK].now(),
                         address=None)  # fmt: skip
    csrf = await sign_in(sso.client, sso.world.teacher)
    status, page = await _link_from_account_page(sso.client, csrf)
    assert status == 409 and reason_of(page) == "taken"
    assert "đã được liên kết với một tài khoản khác" in page and sso.world.technician not in page
    assert 'href="/account"' in page  # back to the account page, not to the sign-in page
    assert await _links_of(sso, sso.world.teacher) == []
    assert [link.subject for link in await _links_of(sso, sso.world.technician)] == ["sub-0001"]
    [failed] = await audit_of(sso.app, "sso.link.failed")
    assert failed.actor == f"user:{sso.world.teacher}" and failed.details == {"reason": "taken", "subject": "sub-0001"}
    assert (await whoami(sso.client))["username"] == sso.world.teacher  # still signed in as themself


async def test_a_link_begun_by_one_user_is_not_made_for_whoever_is_signed_in_at_the_callback(sso: Setup) -> None:
    client = sso.client
    csrf = await sign_in(client, sso.world.teacher)
    started = await client.post("/account/sso/link", data={"csrf_token": csrf}, headers=ORIGIN, allow_redirects=False)
    back = await authorize(started.headers["Location"])
    await sign_in(client, sso.world.technician)  # the session changed hands before the provider answered
    response = await client.get(back.path_qs, allow_redirects=False)
    assert response.status == 403 and reason_of(await response.text()) == "link_session"
    assert await _links_of(sso, sso.world.teacher) == await _links_of(sso, sso.world.technician) == []


async def test_linking_needs_the_csrf_token(sso: Setup) -> None:
    await sign_in(sso.client, sso.world.teacher)
    refused = await sso.client.post("/account/sso/link", headers=ORIGIN, allow_redirects=False)
    assert refused.status == 403 and "authorize" not in sso.fake.seen


async def test_the_last_way_to_sign_in_cannot_be_unlinked_and_another_can(sso: Setup) -> None:
    client = sso.client
    assert (await sign_in_sso(client)).status == 303  # a user made by the provider: no password, one link
    csrf = (await whoami(client))["csrf_token"]
    [only] = await _links_of(sso, "nguyen.van.a")
    page = await (await client.get("/account")).text()
    assert "Mật khẩu: chưa có" in page and f'action="/account/sso/{only.id}/unlink"' in page
    refused = await client.post(f"/account/sso/{only.id}/unlink", data={"csrf_token": csrf}, headers=ORIGIN)
    assert refused.status == 409 and "cách đăng nhập duy nhất" in await refused.text()
    assert [link.id for link in await _links_of(sso, "nguyen.van.a")] == [only.id]
    assert await audit_of(sso.app, "sso.unlink") == []

    teacher_csrf = await sign_in(client, sso.world.teacher)  # a password and a link: the link may go
    async with sso.app[state.DB].begin() as session:
        teacher = (await session.execute(select(User).where(User.username == sso.world.teacher))).scalar_one()
        mine = await links.link(session, teacher, sso.fake.issuer, "sub-teacher", actor="cli",
                                now=sso.app[state.CLOCK].now(), address=None)  # fmt: skip
    other = await client.post(f"/account/sso/{only.id}/unlink", data={"csrf_token": teacher_csrf}, headers=ORIGIN)
    assert other.status == 404  # not theirs: no such link
    assert [link.id for link in await _links_of(sso, "nguyen.van.a")] == [only.id]
    done = await client.post(f"/account/sso/{mine.id}/unlink", data={"csrf_token": teacher_csrf}, headers=ORIGIN,
                             allow_redirects=False)  # fmt: skip
    assert done.status == 303 and done.headers["Location"] == "/account?done=unlinked"
    assert await _links_of(sso, sso.world.teacher) == []
    [entry] = await audit_of(sso.app, "sso.unlink")
    assert entry.actor == f"user:{sso.world.teacher}" and entry.details["subject"] == "sub-teacher"


async def test_an_admin_removes_a_link_and_the_next_sso_sign_in_no_longer_reaches_that_user(sso: Setup) -> None:
    client = sso.client
    assert (await sign_in_sso(client)).status == 303
    user_id = await _user_id(sso, "nguyen.van.a")
    [link] = await _links_of(sso, "nguyen.van.a")
    sso_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["ketnoi_session"].value

    csrf = await sign_in(client, sso.world.admin)
    listing = await (await client.get("/admin/users?q=nguyen")).text()
    assert 'class="sso-link">sub-0001</code>' in listing
    page = await (await client.get(f"/admin/users/{user_id}")).text()
    assert "sub-0001" in page and "system:sso" in page
    assert f'action="/admin/users/{user_id}/sso/{link.id}/unlink"' in page
    removed = await client.post(f"/admin/users/{user_id}/sso/{link.id}/unlink", data={"csrf_token": csrf},
                                headers=ORIGIN, allow_redirects=False)  # fmt: skip
    assert removed.status == 303 and removed.headers["Location"] == f"/admin/users/{user_id}"
    assert await _links_of(sso, "nguyen.van.a") == []
    [entry] = await audit_of(sso.app, "sso.unlink")
    assert (entry.actor, entry.target) == (f"user:{sso.world.admin}", "user:nguyen.van.a")
    page = await (await client.get(f"/admin/users/{user_id}")).text()
    assert "không còn mật khẩu hay liên kết nào" in page  # the admin is told to give a password
    again = await client.post(f"/admin/users/{user_id}/sso/{link.id}/unlink", data={"csrf_token": csrf},
                              headers=ORIGIN, allow_redirects=False)  # fmt: skip
    assert again.status == 404

    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"ketnoi_session": sso_cookie})
    assert (await client.get("/api/session")).status == 401  # the user's sessions ended with the link
    response = await sign_in_sso(client)  # the same person at the provider reaches no one now
    assert response.status == 403 and reason_of(await response.text()) == "not_linked"
    assert (await client.get("/api/session")).status == 401


async def test_a_technician_sees_links_but_may_not_remove_them(sso: Setup) -> None:
    sso.fake.user["preferred_username"] = "gv.hoasen"
    assert (await sign_in_sso(sso.client)).status == 303  # a teacher of the technician's district
    user_id = await _user_id(sso, "gv.hoasen")
    [link] = await _links_of(sso, "gv.hoasen")
    csrf = await sign_in(sso.client, sso.world.technician)
    page = await (await sso.client.get(f"/admin/users/{user_id}")).text()
    assert "sub-0001" in page and "/unlink" not in page
    refused = await sso.client.post(f"/admin/users/{user_id}/sso/{link.id}/unlink", data={"csrf_token": csrf},
                                    headers=ORIGIN, allow_redirects=False)  # fmt: skip
    assert refused.status == 403 and len(await _links_of(sso, "gv.hoasen")) == 1


async def test_a_link_moved_from_the_old_marker_is_completed_at_the_next_sign_in(sso: Setup) -> None:
    """Migration 0006 keeps only the key of a marker it cannot trace to an audit entry."""
    async with sso.app[state.DB].begin() as session:
        teacher = (await session.execute(select(User).where(User.username == sso.world.teacher))).scalar_one()
        key = links.link_key(sso.fake.issuer, "sub-0001")
        session.add(SsoLink(link_key=key, issuer=None, subject=None, user_id=teacher.id,
                            created_at=sso.app[state.CLOCK].now(), created_by="migration"))  # fmt: skip
    sso.fake.user["groups"] = [TEACHERS]
    assert (await sign_in_sso(sso.client)).status == 303
    assert (await whoami(sso.client))["username"] == sso.world.teacher
    [completed] = await _links_of(sso, sso.world.teacher)
    assert (completed.issuer, completed.subject, completed.created_by) == (sso.fake.issuer, "sub-0001", "migration")
