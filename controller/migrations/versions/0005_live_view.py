"""Parent live view: camera assignments (class or staff-only), viewing windows, holidays, consent policy, and
live sessions (the audit of every view). See controller/live/models.py.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "camera_assignments",
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=True),
        sa.Column("staff_only", sa.Boolean(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        _at("updated_at"),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("NOT (staff_only AND class_id IS NOT NULL)", name="ck_camera_assignments_staff_only"),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["class_id"], ["classes.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("camera_id"),
    )
    op.create_index("ix_camera_assignments_class_id", "camera_assignments", ["class_id"])

    op.create_table(
        "viewing_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="ck_viewing_windows_weekday"),
        sa.CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute", name="ck_viewing_windows_minutes"
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_viewing_windows_unit_id", "viewing_windows", ["unit_id"])

    op.create_table(
        "viewing_holidays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unit_id", "day", name="uq_viewing_holidays_unit_day"),
    )
    op.create_index("ix_viewing_holidays_unit_id", "viewing_holidays", ["unit_id"])

    op.create_table(
        "live_policies",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("consent_policy", sa.String(length=32), nullable=False),
        _at("updated_at"),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("unit_id"),
    )

    op.create_table(
        "live_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=True),
        sa.Column("class_id", sa.Integer(), nullable=True),
        sa.Column("camera_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        _at("started_at"),
        _at("seen_at", nullable=True),
        _at("ended_at", nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["child_id"], ["children.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["class_id"], ["classes.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="uq_live_sessions_key"),
    )
    op.create_index("ix_live_sessions_open", "live_sessions", ["ended_at", "user_id"])
    op.create_index("ix_live_sessions_user_id", "live_sessions", ["user_id"])
    op.create_index("ix_live_sessions_camera_id", "live_sessions", ["camera_id"])
    op.create_index("ix_live_sessions_unit_id", "live_sessions", ["unit_id"])


def downgrade() -> None:
    op.drop_table("live_sessions")
    op.drop_table("live_policies")
    op.drop_table("viewing_holidays")
    op.drop_table("viewing_windows")
    op.drop_table("camera_assignments")
