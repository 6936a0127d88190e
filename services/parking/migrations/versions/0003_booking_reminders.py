"""Bookings remember when their booker was reminded of the start and told of an overstay, so the
`remind-bookings` job tells each once; partial indexes keep its scans to bookings still due one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bookings", sa.Column("start_reminded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bookings", sa.Column("overstay_reminded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_bookings_start_reminder_due",
        "bookings",
        ["starts_at"],
        postgresql_where=sa.text("status = 'confirmed' AND start_reminded_at IS NULL"),
    )
    op.create_index(
        "ix_bookings_overstay_due",
        "bookings",
        ["ends_at"],
        postgresql_where=sa.text("status = 'active' AND overstay_reminded_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_bookings_overstay_due", table_name="bookings")
    op.drop_index("ix_bookings_start_reminder_due", table_name="bookings")
    op.drop_column("bookings", "overstay_reminded_at")
    op.drop_column("bookings", "start_reminded_at")
