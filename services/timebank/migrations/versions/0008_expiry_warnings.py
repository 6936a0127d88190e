"""Members are warned ahead of their hours expiring: `tb_expiry_warnings` keeps one row per
(member, day of expiry) told, so the warning job publishes each lot once across replicas and runs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tb_expiry_warnings",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("warned_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("community", "member_id", "expires_on", name=op.f("pk_tb_expiry_warnings")),
    )


def downgrade() -> None:
    op.drop_table("tb_expiry_warnings")
