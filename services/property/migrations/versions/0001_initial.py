"""The property service's tables: registry, tickets and their audit trail, photos, orders, settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:35:11.905445
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.kit.migrations import create_kit_tables, drop_kit_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables()
    op.create_table(
        "buildings",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("steward_id", sa.Text(), nullable=True),
        sa.Column("backup_steward_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.UniqueConstraint("community", "code", name=op.f("uq_buildings_community_code")),
    )
    op.create_index(op.f("ix_buildings_community"), "buildings", ["community"], unique=False)
    op.create_table(
        "catalogue_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=True),
        sa.CheckConstraint("price_fen IS NULL OR price_fen > 0", name=op.f("ck_catalogue_items_price_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_items")),
        sa.UniqueConstraint("community", "code", name=op.f("uq_catalogue_items_community_code")),
    )
    op.create_table(
        "daily_ticket_counts",
        sa.Column("resident_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("resident_id", "day", name=op.f("pk_daily_ticket_counts")),
    )
    op.create_table(
        "sla_policies",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "response_minutes > 0 AND resolution_minutes >= response_minutes",
            name=op.f("ck_sla_policies_minutes"),
        ),
        sa.PrimaryKeyConstraint("community", "category", "priority", name=op.f("pk_sla_policies")),
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
        sa.UniqueConstraint("community", "username", name=op.f("uq_staff_community_username")),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("resident_id", sa.Text(), nullable=False),
        sa.Column("household_id", sa.Text(), nullable=False),
        sa.Column("building_id", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("service_code", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("preferred_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("assignee_id", sa.Text(), nullable=True),
        sa.Column("quote_fen", sa.Integer(), nullable=True),
        sa.Column("quote_approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_minutes", sa.Integer(), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rating_overall", sa.Integer(), nullable=True),
        sa.Column("rating_speed", sa.Integer(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("hurry_count", sa.Integer(), nullable=False),
        sa.Column("last_hurried_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("follow_up_note", sa.Text(), nullable=True),
        sa.Column("redemption_id", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "NOT (category IN ('repair','cleaning','complaint','consultation')) "
            "OR (quote_fen IS NULL AND quote_approved_at IS NULL)",
            name=op.f("ck_tickets_basic_is_free"),
        ),
        sa.CheckConstraint(
            "category IN ('repair','cleaning','complaint','consultation') "
            "OR status NOT IN ('in_progress','paused','completed','confirmed') OR quote_approved_at IS NOT NULL",
            name=op.f("ck_tickets_paid_work_approved"),
        ),
        sa.CheckConstraint(
            "category IN ('repair','cleaning','complaint','consultation','service')",
            name=op.f("ck_tickets_category"),
        ),
        sa.CheckConstraint("quote_fen IS NULL OR quote_fen > 0", name=op.f("ck_tickets_quote_positive")),
        sa.CheckConstraint("rating_overall IS NULL OR rating_overall BETWEEN 1 AND 5", name=op.f("ck_tickets_rating_overall")),
        sa.CheckConstraint("rating_speed IS NULL OR rating_speed BETWEEN 1 AND 5", name=op.f("ck_tickets_rating_speed")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("id", "category", name="uq_tickets_id_category"),
        sa.UniqueConstraint("redemption_id", name=op.f("uq_tickets_redemption_id")),
    )
    op.create_index(
        "ix_tickets_community_queue",
        "tickets",
        ["community", "due_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_tickets_household", "tickets", ["community", "household_id", "created_at", "id"], unique=False)
    op.create_index(
        "ix_tickets_resolution_watch",
        "tickets",
        ["resolution_due_at"],
        unique=False,
        postgresql_where=sa.text("resolution_breached_at IS NULL AND status IN ('accepted','quoted','approved','in_progress')"),
    )
    op.create_index(
        "ix_tickets_response_watch",
        "tickets",
        ["response_due_at"],
        unique=False,
        postgresql_where=sa.text("response_breached_at IS NULL AND status IN ('assigned','queued')"),
    )
    op.create_index(
        "ix_tickets_steward_queue",
        "tickets",
        ["community", "assignee_id", "due_at", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('assigned','queued','accepted','quoted','approved','in_progress','paused')"),
    )
    op.create_table(
        "households",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("building_id", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["building_id"], ["buildings.id"], name=op.f("fk_households_building_id_buildings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_households")),
        sa.UniqueConstraint("community", "building_id", "unit", name=op.f("uq_households_community_building_id_unit")),
    )
    op.create_table(
        "payment_orders",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("ticket_category", sa.Text(), nullable=False),
        sa.Column("resident_id", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("provider_ref", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("method IN ('money','points')", name=op.f("ck_payment_orders_method")),
        sa.CheckConstraint("status IN ('pending','paid','rejected','failed')", name=op.f("ck_payment_orders_status")),
        sa.CheckConstraint("ticket_category = 'service'", name=op.f("ck_payment_orders_paid_category_only")),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_payment_orders_amount_positive")),
        sa.ForeignKeyConstraint(
            ["ticket_id", "ticket_category"],
            ["tickets.id", "tickets.category"],
            name="fk_payment_orders_ticket",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_orders")),
    )
    op.create_index(
        "uq_payment_orders_live",
        "payment_orders",
        ["ticket_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('pending','paid')"),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("uploader_id", sa.Text(), nullable=False),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("size_bytes > 0 AND size_bytes <= 2097152", name=op.f("ck_photos_size")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_photos_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
    )
    op.create_index(op.f("ix_photos_ticket_id"), "photos", ["ticket_id"], unique=False)
    op.create_table(
        "roster_shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Text(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute",
            name=op.f("ck_roster_shifts_minutes"),
        ),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_roster_shifts_weekday")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_roster_shifts_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roster_shifts")),
    )
    op.create_index(op.f("ix_roster_shifts_staff_id"), "roster_shifts", ["staff_id"], unique=False)
    op.create_table(
        "ticket_steps",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("from_status", sa.Text(), nullable=True),
        sa.Column("to_status", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_steps_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_steps")),
    )
    op.create_index(op.f("ix_ticket_steps_ticket_id"), "ticket_steps", ["ticket_id"], unique=False)
    op.create_table(
        "residents",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("household_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"], name=op.f("fk_residents_household_id_households")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residents")),
        sa.UniqueConstraint("community", "phone", name=op.f("uq_residents_community_phone")),
    )
    op.create_index(op.f("ix_residents_household_id"), "residents", ["household_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_residents_household_id"), table_name="residents")
    op.drop_table("residents")
    op.drop_index(op.f("ix_ticket_steps_ticket_id"), table_name="ticket_steps")
    op.drop_table("ticket_steps")
    op.drop_index(op.f("ix_roster_shifts_staff_id"), table_name="roster_shifts")
    op.drop_table("roster_shifts")
    op.drop_index(op.f("ix_photos_ticket_id"), table_name="photos")
    op.drop_table("photos")
    op.drop_index(
        "uq_payment_orders_live",
        table_name="payment_orders",
        postgresql_where=sa.text("status IN ('pending','paid')"),
    )
    op.drop_table("payment_orders")
    op.drop_table("households")
    op.drop_index(
        "ix_tickets_steward_queue",
        table_name="tickets",
        postgresql_where=sa.text("status IN ('assigned','queued','accepted','quoted','approved','in_progress','paused')"),
    )
    op.drop_index(
        "ix_tickets_response_watch",
        table_name="tickets",
        postgresql_where=sa.text("response_breached_at IS NULL AND status IN ('assigned','queued')"),
    )
    op.drop_index(
        "ix_tickets_resolution_watch",
        table_name="tickets",
        postgresql_where=sa.text("resolution_breached_at IS NULL AND status IN ('accepted','quoted','approved','in_progress')"),
    )
    op.drop_index("ix_tickets_household", table_name="tickets")
    op.drop_index("ix_tickets_community_queue", table_name="tickets", postgresql_where=sa.text("status = 'queued'"))
    op.drop_table("tickets")
    op.drop_table("staff")
    op.drop_table("sla_policies")
    op.drop_table("daily_ticket_counts")
    op.drop_table("catalogue_items")
    op.drop_index(op.f("ix_buildings_community"), table_name="buildings")
    op.drop_table("buildings")
    drop_kit_tables()
