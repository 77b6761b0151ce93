"""Rooms and bookings: rooms with their policies, bookings (series), their rooms, occurrences, room occupancy.

`room_occupancy` holds one row per room per live occurrence. On PostgreSQL an exclusion constraint (btree_gist)
refuses two overlapping rows for one room, so concurrent bookings cannot both win; on SQLite the service
serialises the check-and-insert (see controller/bookings/service.py).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # In public, not the current schema: an extension belongs to the database, and a per-test schema dropped
        # with CASCADE would take it away from every other schema. Its gist operator classes are found by type.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public")

    op.create_table(
        "rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("equipment", sa.JSON(), nullable=False),
        sa.Column("bandwidth_class", sa.String(length=32), nullable=False),
        sa.Column("booking_window_days", sa.Integer(), nullable=False),
        sa.Column("max_duration_minutes", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unit_id", "name", name="uq_rooms_unit_name"),
    )
    op.create_index("ix_rooms_unit_id", "rooms", ["unit_id"])

    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("agenda", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("organizer_id", sa.Integer(), nullable=False),
        sa.Column("host_room_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("rrule", sa.String(length=300), nullable=True),
        sa.Column("exdates", sa.JSON(), nullable=False),
        sa.Column("attendees", sa.Integer(), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organizer_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["host_room_id"], ["rooms.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bookings_organizer_id", "bookings", ["organizer_id"])
    op.create_index("ix_bookings_host_room_id", "bookings", ["host_room_id"])

    op.create_table(
        "booking_rooms",
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("is_host", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("booking_id", "room_id"),
    )
    op.create_index("ix_booking_rooms_room_id", "booking_rooms", ["room_id"])

    op.create_table(
        "occurrences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("recurrence_id", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("detached", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("booking_id", "recurrence_id", name="uq_occurrences_booking_recurrence"),
    )
    op.create_index("ix_occurrences_starts_at", "occurrences", ["starts_at"])

    op.create_table(
        "room_occupancy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name="ck_room_occupancy_positive"),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["occurrence_id"], ["occurrences.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_room_occupancy_room_start", "room_occupancy", ["room_id", "starts_at"])
    op.create_index("ix_room_occupancy_occurrence_id", "room_occupancy", ["occurrence_id"])
    op.create_index("ix_room_occupancy_booking_id", "room_occupancy", ["booking_id"])
    if postgres:
        op.execute(
            "ALTER TABLE room_occupancy ADD CONSTRAINT ex_room_occupancy_overlap "
            "EXCLUDE USING gist (room_id WITH =, tstzrange(starts_at, ends_at) WITH &&)"
        )


def downgrade() -> None:
    # btree_gist stays: other schemas of the same database may use it.
    op.drop_index("ix_room_occupancy_booking_id", table_name="room_occupancy")
    op.drop_index("ix_room_occupancy_occurrence_id", table_name="room_occupancy")
    op.drop_index("ix_room_occupancy_room_start", table_name="room_occupancy")
    op.drop_table("room_occupancy")
    op.drop_index("ix_occurrences_starts_at", table_name="occurrences")
    op.drop_table("occurrences")
    op.drop_index("ix_booking_rooms_room_id", table_name="booking_rooms")
    op.drop_table("booking_rooms")
    op.drop_index("ix_bookings_host_room_id", table_name="bookings")
    op.drop_index("ix_bookings_organizer_id", table_name="bookings")
    op.drop_table("bookings")
    op.drop_index("ix_rooms_unit_id", table_name="rooms")
    op.drop_table("rooms")
