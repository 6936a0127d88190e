"""A security guard (保安) lists the security service's tickets only: a partial index serves that
list's order (newest first) without reading the residents' tickets.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_tickets_security", "tickets", ["community", "created_at", "id"], postgresql_where=sa.text("source = 'security'")
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_security", table_name="tickets")
