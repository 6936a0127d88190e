"""Visitor passes with a plate (from security's events) open the gate without a booking.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "visitor_plates",
        sa.Column("pass_id", sa.Text(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("plate", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_entries", sa.Integer(), nullable=True),
        sa.Column("entries_used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("max_entries IS NULL OR entries_used <= max_entries", name=op.f("ck_visitor_plates_entries")),
        sa.PrimaryKeyConstraint("pass_id", name=op.f("pk_visitor_plates")),
    )
    op.create_index("ix_visitor_plates_plate", "visitor_plates", ["community", "plate", "valid_until"], unique=False)
    op.add_column("gate_events", sa.Column("visitor_pass_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("gate_events", "visitor_pass_id")
    op.drop_index("ix_visitor_plates_plate", table_name="visitor_plates")
    op.drop_table("visitor_plates")
