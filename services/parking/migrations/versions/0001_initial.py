"""Parking's initial schema: spots, windows and their occurrences, bookings, payments, gates.

Revision ID: 0001
Revises:

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.kit.migrations import create_kit_tables, drop_kit_tables

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    create_kit_tables()
    # btree_gist lets one GiST index mix equality on spot_id with overlap on the time range.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "community_settings",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("owner_share_bp", sa.Integer(), nullable=False),
        sa.Column("property_share_bp", sa.Integer(), nullable=False),
        sa.Column("public_rate_fen_per_30min", sa.Integer(), nullable=False),
        sa.Column("hold_minutes", sa.Integer(), nullable=False),
        sa.Column("min_window_minutes", sa.Integer(), nullable=False),
        sa.Column("min_booking_minutes", sa.Integer(), nullable=False),
        sa.Column("full_refund_before_minutes", sa.Integer(), nullable=False),
        sa.Column("late_cancel_refund_pct", sa.Integer(), nullable=False),
        sa.Column("entry_grace_minutes", sa.Integer(), nullable=False),
        sa.Column("walk_in_block_minutes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community", name=op.f("pk_community_settings")),
    )
    op.create_table(
        "gate_devices",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_devices")),
    )
    op.create_table(
        "spots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("size", sa.Text(), nullable=False),
        sa.Column("has_charger", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("verified_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind = 'public' OR owner_id IS NOT NULL", name=op.f("ck_spots_private_has_owner")),
        sa.CheckConstraint("kind IN ('private', 'public')", name=op.f("ck_spots_kind")),
        sa.CheckConstraint("size IN ('compact', 'standard', 'large')", name=op.f("ck_spots_size")),
        sa.CheckConstraint("status IN ('pending', 'verified', 'rejected')", name=op.f("ck_spots_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spots")),
        sa.UniqueConstraint("community", "code", name=op.f("uq_spots_community_code")),
    )
    op.create_index(op.f("ix_spots_community"), "spots", ["community"], unique=False)
    op.create_index(op.f("ix_spots_owner_id"), "spots", ["owner_id"], unique=False)
    op.create_table(
        "windows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("spot_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("weekdays", sa.Text(), nullable=True),
        sa.Column("local_start", sa.Time(), nullable=True),
        sa.Column("local_end", sa.Time(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("price_fen_per_30min", sa.Integer(), nullable=False),
        sa.Column("buffer_minutes", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("expanded_until", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('one_off', 'weekly')", name=op.f("ck_windows_kind")),
        sa.CheckConstraint("buffer_minutes >= 0", name=op.f("ck_windows_buffer")),
        sa.CheckConstraint("price_fen_per_30min >= 0", name=op.f("ck_windows_price")),
        sa.ForeignKeyConstraint(["spot_id"], ["spots.id"], name=op.f("fk_windows_spot_id_spots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_windows")),
    )
    op.create_index(op.f("ix_windows_spot_id"), "windows", ["spot_id"], unique=False)
    op.create_table(
        "window_occurrences",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("window_id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("spot_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "period",
            postgresql.TSTZRANGE(),
            sa.Computed("tstzrange(starts_at, ends_at, '[)')", persisted=True),
            nullable=True,
        ),
        sa.Column("price_fen_per_30min", sa.Integer(), nullable=False),
        sa.Column("buffer_minutes", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        postgresql.ExcludeConstraint(
            (sa.column("spot_id"), "="),
            (sa.column("period"), "&&"),
            where=sa.text("status = 'open'"),
            using="gist",
            name="ex_window_occurrences_spot_period",
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_window_occurrences_range")),
        sa.ForeignKeyConstraint(["spot_id"], ["spots.id"], name=op.f("fk_window_occurrences_spot_id_spots")),
        sa.ForeignKeyConstraint(["window_id"], ["windows.id"], name=op.f("fk_window_occurrences_window_id_windows")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_window_occurrences")),
        sa.UniqueConstraint("window_id", "starts_at", name=op.f("uq_window_occurrences_window_id_starts_at")),
    )
    op.create_index(
        "ix_window_occurrences_community_period",
        "window_occurrences",
        ["community", "period"],
        unique=False,
        postgresql_using="gist",
    )
    op.create_index(op.f("ix_window_occurrences_window_id"), "window_occurrences", ["window_id"], unique=False)
    op.create_table(
        "bookings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("spot_id", sa.Uuid(), nullable=False),
        sa.Column("occurrence_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("booker_id", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("plate", sa.Text(), nullable=False),
        sa.Column("visitor", sa.Boolean(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("block_ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "blocked",
            postgresql.TSTZRANGE(),
            sa.Computed("tstzrange(starts_at, block_ends_at, '[)')", persisted=True),
            nullable=True,
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("price_fen_per_30min", sa.Integer(), nullable=False),
        sa.Column("fee_fen", sa.Integer(), nullable=False),
        sa.Column("paid_fen", sa.Integer(), nullable=False),
        sa.Column("refunded_fen", sa.Integer(), nullable=False),
        sa.Column("overstay_fen", sa.Integer(), nullable=False),
        sa.Column("owner_share_fen", sa.Integer(), nullable=False),
        sa.Column("property_share_fen", sa.Integer(), nullable=False),
        sa.Column("platform_share_fen", sa.Integer(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        postgresql.ExcludeConstraint(
            (sa.column("spot_id"), "="),
            (sa.column("blocked"), "&&"),
            where=sa.text("status IN ('held', 'confirmed', 'active')"),
            using="gist",
            name="ex_bookings_spot_blocked",
        ),
        sa.CheckConstraint(
            "status IN ('held', 'confirmed', 'active', 'completed', 'cancelled', 'expired')",
            name=op.f("ck_bookings_status"),
        ),
        sa.CheckConstraint("block_ends_at >= ends_at", name=op.f("ck_bookings_block")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_bookings_range")),
        sa.CheckConstraint(
            "fee_fen >= 0 AND paid_fen >= 0 AND refunded_fen >= 0 AND refunded_fen <= paid_fen",
            name=op.f("ck_bookings_money"),
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["window_occurrences.id"],
            name=op.f("fk_bookings_occurrence_id_window_occurrences"),
        ),
        sa.ForeignKeyConstraint(["spot_id"], ["spots.id"], name=op.f("fk_bookings_spot_id_spots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    op.create_index(op.f("ix_bookings_booker_id"), "bookings", ["booker_id"], unique=False)
    op.create_index(
        "ix_bookings_held_expiry",
        "bookings",
        ["hold_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'held'"),
    )
    op.create_index(op.f("ix_bookings_occurrence_id"), "bookings", ["occurrence_id"], unique=False)
    op.create_index(op.f("ix_bookings_owner_id"), "bookings", ["owner_id"], unique=False)
    op.create_index("ix_bookings_plate_status", "bookings", ["community", "plate", "status"], unique=False)
    op.create_table(
        "gate_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("plate", sa.Text(), nullable=False),
        sa.Column("corrected_plate", sa.Text(), nullable=True),
        sa.Column("corrected_by", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("charged_fen", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("direction IN ('entry', 'exit')", name=op.f("ck_gate_events_direction")),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name=op.f("fk_gate_events_booking_id_bookings")),
        sa.ForeignKeyConstraint(["device_id"], ["gate_devices.id"], name=op.f("fk_gate_events_device_id_gate_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_events")),
    )
    op.create_index(op.f("ix_gate_events_community"), "gate_events", ["community"], unique=False)
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("provider_ref", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name=op.f("fk_payments_booking_id_bookings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    op.create_index(op.f("ix_payments_booking_id"), "payments", ["booking_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_payments_booking_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_index(op.f("ix_gate_events_community"), table_name="gate_events")
    op.drop_table("gate_events")
    op.drop_index("ix_bookings_plate_status", table_name="bookings")
    op.drop_index(op.f("ix_bookings_owner_id"), table_name="bookings")
    op.drop_index(op.f("ix_bookings_occurrence_id"), table_name="bookings")
    op.drop_index("ix_bookings_held_expiry", table_name="bookings", postgresql_where=sa.text("status = 'held'"))
    op.drop_index(op.f("ix_bookings_booker_id"), table_name="bookings")
    op.drop_table("bookings")
    op.drop_index(op.f("ix_window_occurrences_window_id"), table_name="window_occurrences")
    op.drop_index("ix_window_occurrences_community_period", table_name="window_occurrences", postgresql_using="gist")
    op.drop_table("window_occurrences")
    op.drop_index(op.f("ix_windows_spot_id"), table_name="windows")
    op.drop_table("windows")
    op.drop_index(op.f("ix_spots_owner_id"), table_name="spots")
    op.drop_index(op.f("ix_spots_community"), table_name="spots")
    op.drop_table("spots")
    op.drop_table("gate_devices")
    op.drop_table("community_settings")
    drop_kit_tables()
