"""The voting roll projected from property's registry: units' areas, sales and buyer keys; owners.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gov_roll_units",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("household_id", sa.Text(), nullable=False),
        sa.Column("area", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sold", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("buyer_key", sa.Text(), nullable=True),
        sa.CheckConstraint("area >= 0", name=op.f("ck_gov_roll_units_area_not_negative")),
        sa.PrimaryKeyConstraint("community", "household_id", name=op.f("pk_gov_roll_units")),
    )
    op.add_column("gov_residents", sa.Column("owner", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade() -> None:
    op.drop_column("gov_residents", "owner")
    op.drop_table("gov_roll_units")
