"""citysync's initial schema: feeds and their counters, daily statistics, the data-sharing register.

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
    scenes = "scene IN ('timebank', 'parking', 'property', 'governance', 'stats')"
    op.create_table(
        "daily_spots",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("spot", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("community", "day", "spot", name=op.f("pk_daily_spots")),
    )
    op.create_table(
        "daily_stats",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("published_revision", sa.Integer(), nullable=False),
        sa.Column("services_confirmed", sa.Integer(), nullable=False),
        sa.Column("minutes_served", sa.Integer(), nullable=False),
        sa.Column("minutes_reversed", sa.Integer(), nullable=False),
        sa.Column("bookings_completed", sa.Integer(), nullable=False),
        sa.Column("booked_minutes", sa.Integer(), nullable=False),
        sa.Column("parking_fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("tickets_submitted", sa.Integer(), nullable=False),
        sa.Column("tickets_completed", sa.Integer(), nullable=False),
        sa.Column("tickets_on_time", sa.Integer(), nullable=False),
        sa.Column("sla_breaches", sa.Integer(), nullable=False),
        sa.Column("redemptions_reserved", sa.Integer(), nullable=False),
        sa.Column("redemptions_captured", sa.Integer(), nullable=False),
        sa.Column("redemptions_released", sa.Integer(), nullable=False),
        sa.Column("points_redeemed", sa.BigInteger(), nullable=False),
        sa.Column("minutes_by_type", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("spots_used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("community", "day", name=op.f("pk_daily_stats")),
    )
    op.create_table(
        "data_consumers",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("hash_key", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("registered_by", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f("ck_data_consumers_status")),
        sa.PrimaryKeyConstraint("community", "id", name=op.f("pk_data_consumers")),
    )
    op.create_table(
        "feed_counters",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("scene", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(scenes, name=op.f("ck_feed_counters_scene")),
        sa.PrimaryKeyConstraint("community", "scene", name=op.f("pk_feed_counters")),
    )
    op.create_table(
        "feed_records",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("scene", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=True),
        sa.Column("source_event_id", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(scenes, name=op.f("ck_feed_records_scene")),
        sa.CheckConstraint("seq > 0", name=op.f("ck_feed_records_seq_positive")),
        sa.PrimaryKeyConstraint("community", "scene", "seq", name=op.f("pk_feed_records")),
        sa.UniqueConstraint("scene", "source_event_id", name=op.f("uq_feed_records_scene_source_event_id")),
    )
    op.create_index("ix_feed_records_subject", "feed_records", ["scene", "subject_id"], unique=False)
    op.create_table(
        "grants",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("consumer_id", sa.Text(), nullable=False),
        sa.Column("scene", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(scenes, name=op.f("ck_grants_scene")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    op.create_index(
        "uq_grants_live",
        "grants",
        ["community", "consumer_id", "scene"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "pulls",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("consumer_id", sa.Text(), nullable=False),
        sa.Column("scene", sa.Text(), nullable=False),
        sa.Column("after_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pulls")),
    )
    op.create_index("ix_pulls_consumer", "pulls", ["community", "consumer_id", "id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_pulls_consumer", table_name="pulls")
    op.drop_table("pulls")
    op.drop_index("uq_grants_live", table_name="grants", postgresql_where=sa.text("revoked_at IS NULL"))
    op.drop_table("grants")
    op.drop_index("ix_feed_records_subject", table_name="feed_records")
    op.drop_table("feed_records")
    op.drop_table("feed_counters")
    op.drop_table("data_consumers")
    op.drop_table("daily_stats")
    op.drop_table("daily_spots")
    drop_kit_tables()
