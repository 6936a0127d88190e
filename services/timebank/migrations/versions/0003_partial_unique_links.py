"""The at-most-once links of transfers as partial unique indexes.

`pending_id` (a posting or void of a pending transfer) and `reverses_id` (a reversal) are NULL on
most rows, yet a full index takes an entry for every row and again for every non-HOT update (the
pending row's resolution on each confirmation). Uniqueness among the non-NULL values is all the
rule needs, and lookups by a value (`pending_id = $1`) use the partial index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINKS = ("pending_id", "reverses_id")


def upgrade() -> None:
    for column in LINKS:
        op.drop_index(f"uq_tb_transfers_{column}", table_name="tb_transfers")
        op.create_index(
            f"uq_tb_transfers_{column}", "tb_transfers", [column], unique=True, postgresql_where=f"{column} IS NOT NULL"
        )


def downgrade() -> None:
    for column in LINKS:
        op.drop_index(f"uq_tb_transfers_{column}", table_name="tb_transfers")
        op.create_index(f"uq_tb_transfers_{column}", "tb_transfers", [column], unique=True)
