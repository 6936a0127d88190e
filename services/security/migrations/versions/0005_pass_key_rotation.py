"""A community's pass-signing key can be rotated: a retired key records until when it stays published
(the end of the last pass it may have signed). Keys retired before (none: there was no route) keep
no end and stay published.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("pass_keys", sa.Column("published_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("pass_keys", "published_until")
