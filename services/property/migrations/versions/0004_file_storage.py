"""Photos move from each replica's disk to the kit's file store: its PostgreSQL adapter's tables;
a photo may be uploaded straight to an object store (pending until checked, no sha256 of its own).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.storage.postgres import create_file_tables, drop_file_tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_file_tables()
    op.add_column("photos", sa.Column("pending", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.alter_column("photos", "sha256", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM photos WHERE sha256 IS NULL")
    op.alter_column("photos", "sha256", existing_type=sa.Text(), nullable=False)
    op.drop_column("photos", "pending")
    drop_file_tables()
