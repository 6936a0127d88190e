"""What an owners' vote counts: each unit's exclusive area, sold or not, buyer key; residents marked owners.

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
    op.add_column("households", sa.Column("exclusive_area", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("households", sa.Column("sold", sa.Boolean(), server_default=sa.text("true"), nullable=False))
    op.add_column("households", sa.Column("buyer_key", sa.Text(), nullable=True))
    op.create_check_constraint(op.f("ck_households_exclusive_area_not_negative"), "households", "exclusive_area >= 0")
    op.add_column("residents", sa.Column("owner", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade() -> None:
    op.drop_column("residents", "owner")
    op.drop_constraint(op.f("ck_households_exclusive_area_not_negative"), "households", type_="check")
    op.drop_column("households", "buyer_key")
    op.drop_column("households", "sold")
    op.drop_column("households", "exclusive_area")
