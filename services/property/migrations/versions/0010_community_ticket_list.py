"""Staff list the community's tickets newest first (a steward's `GET /tickets`, the default sort):
an index in that order lets a page read its 21 rows instead of sorting every ticket of the
community (50,000 in the request bench: about 28 ms of PostgreSQL's CPU a page).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_community_created", "tickets", ["community", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_community_created", table_name="tickets")
