"""Daily statistics count points granted (governance.points.granted.v1), beside points redeemed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("daily_stats", sa.Column("points_granted", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("daily_stats", "points_granted")
