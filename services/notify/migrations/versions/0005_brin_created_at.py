"""Notifications' creation times in a BRIN index instead of a B-tree: the only reader is the retention
trim (`created_at < now() - 180 days`), and rows arrive in time order, so a summary per range of pages
answers it; a B-tree entry per notification cost the fan-out an index insert on every row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_notifications_created_at", table_name="notifications")
    op.create_index(
        "ix_notifications_created_at",
        "notifications",
        ["created_at"],
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_created_at", table_name="notifications")
    op.create_index("ix_notifications_created_at", "notifications", ["created_at"])
