"""An index that walks a community's member accounts in id order.

The hours-expiry job pages through a community's member accounts by id (`a.id > :after ORDER BY
a.id LIMIT n`) and sums each one's valid credits. Without this index PostgreSQL summed every
member's credits and sorted them for each page (320 ms a page on 20,000 members); with it, a page
reads the accounts in order and stops at the page's end.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tb_accounts_community_kind_id", "tb_accounts", ["community", "kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_tb_accounts_community_kind_id", table_name="tb_accounts")
