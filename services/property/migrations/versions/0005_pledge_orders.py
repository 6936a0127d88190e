"""Orders opened for governance's service pledges: one ticket per pledge.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("pledge_id", sa.Text(), nullable=True))
    op.create_unique_constraint(op.f("uq_tickets_pledge_id"), "tickets", ["pledge_id"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_tickets_pledge_id"), "tickets", type_="unique")
    op.drop_column("tickets", "pledge_id")
