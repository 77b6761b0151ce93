"""`python -m controller sso-link`: link an existing local user to their subject at the Department's provider.

Without `sso_create_users`, only linked users sign in with the Department account. The link is a row of
`sso_links` (controller/sso/links.py), audited `sso.link` by `cli`; the user keeps their password, if they have
one. A user links their own account from `/account`, and removes it there or an administrator does.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.config import ControllerConfig
from controller.db.models import User
from controller.sso import links


class LinkError(Exception):
    """The link cannot be made; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", required=True, help="the local user")
    parser.add_argument("--subject", required=True, help="the user's `sub` at the provider (its ID tokens' subject)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


async def link_command(session: AsyncSession, config: ControllerConfig, args: argparse.Namespace) -> dict[str, Any]:
    if not config.sso_enabled:
        raise LinkError("single sign-on is not configured (sso_issuer)")
    subject = str(args.subject).strip()
    if not subject or len(subject) > 255:
        raise LinkError("the subject is 1-255 characters")
    user = (await session.execute(select(User).where(User.username == args.username))).scalar_one_or_none()
    if user is None:
        raise LinkError(f"no user named {args.username}")
    try:
        await links.link(session, user, config.sso_issuer, subject, actor="cli", now=datetime.now(UTC), address=None)
    except links.LinkError as exc:
        raise LinkError(f"that subject is already linked to {exc.other}") from None
    return {"id": user.id, "username": user.username, "issuer": config.sso_issuer, "subject": subject}
