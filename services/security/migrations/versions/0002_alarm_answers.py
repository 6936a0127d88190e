"""An alarm's answer: when staff acknowledged it and who, for the response time the city counts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alarms", sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarms", sa.Column("acknowledged_by", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("alarms", "acknowledged_by")
    op.drop_column("alarms", "acknowledged_at")
