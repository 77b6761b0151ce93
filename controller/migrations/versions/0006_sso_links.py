"""Single sign-on links in a table of their own (controller/sso/links.py) instead of `users.password_hash`.

Until now a linked user's password hash was `!sso:<sha256(issuer, subject)>`. Each such user gets a row in
`sso_links` with that key; issuer and subject are filled in from the `sso.link` audit entry that made the link
when there is one (the command recorded both), and otherwise stay NULL until the person's next sign-in, which
finds the row by its key and fills them in. The user's password hash becomes `!` (no usable password, as before).

Downgrade puts the marker back for users who have a link and no password (their first link); a user with both
a password and a link keeps the password and loses the link.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from controller.db.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MARKER = "!sso:"
NO_PASSWORD = "!"  # noqa: S105 (not a hash argon2 accepts: no password signs in)

_users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("password_hash", sa.String()),
    sa.column("created_at", UTCDateTime()),
)
_audit = sa.table(
    "audit_log",
    sa.column("at", UTCDateTime()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("details", sa.JSON()),
)
_links = sa.table(
    "sso_links",
    sa.column("id", sa.Integer()),
    sa.column("link_key", sa.String()),
    sa.column("issuer", sa.String()),
    sa.column("subject", sa.String()),
    sa.column("user_id", sa.Integer()),
    sa.column("created_at", UTCDateTime()),
    sa.column("created_by", sa.String()),
)


def _key(issuer: str, subject: str) -> str:
    return hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()


def upgrade() -> None:
    op.create_table(
        "sso_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_key", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=512), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_key"),
        sa.UniqueConstraint("issuer", "subject", name="uq_sso_links_issuer_subject"),
    )
    op.create_index("ix_sso_links_user_id", "sso_links", ["user_id"])
    _move_markers(op.get_bind())


def _move_markers(bind: sa.Connection) -> None:
    linked = bind.execute(
        sa.select(_users.c.id, _users.c.password_hash, _users.c.created_at).where(
            _users.c.password_hash.startswith(MARKER, autoescape=True)
        )
    ).all()
    if not linked:
        return
    known: dict[str, tuple[str, str, datetime, str]] = {}  # key -> issuer, subject, when, who (latest wins)
    entries = bind.execute(
        sa.select(_audit.c.at, _audit.c.actor, _audit.c.details).where(_audit.c.action == "sso.link")
    ).all()
    for at, actor, details in entries:
        issuer, subject = (details or {}).get("issuer"), (details or {}).get("subject")
        if isinstance(issuer, str) and isinstance(subject, str):
            known[_key(issuer, subject)] = (issuer, subject, at, actor)
    rows = []
    for user_id, marker, created_at in linked:
        key = marker[len(MARKER) :]
        issuer, subject, at, actor = known.get(key, (None, None, created_at or datetime.now(UTC), "migration"))
        rows.append({"link_key": key, "issuer": issuer, "subject": subject, "user_id": user_id,
                     "created_at": at, "created_by": actor[:100]})  # fmt: skip
    op.bulk_insert(_links, rows)
    bind.execute(
        sa.update(_users)
        .where(_users.c.password_hash.startswith(MARKER, autoescape=True))
        .values(password_hash=NO_PASSWORD)
    )


def downgrade() -> None:
    bind = op.get_bind()
    links = bind.execute(sa.select(_links.c.user_id, _links.c.link_key).order_by(_links.c.id)).all()
    first: dict[int, str] = {}
    for user_id, key in links:
        first.setdefault(user_id, key)
    for user_id, key in first.items():
        bind.execute(
            sa.update(_users)
            .where(_users.c.id == user_id, _users.c.password_hash.startswith("!"))
            .values(password_hash=f"{MARKER}{key}")
        )
    op.drop_index("ix_sso_links_user_id", table_name="sso_links")
    op.drop_table("sso_links")
