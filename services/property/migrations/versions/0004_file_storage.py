"""Photos move from each replica's disk to the kit's file store: its PostgreSQL adapter's tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from services.kit.storage.postgres import create_file_tables, drop_file_tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_file_tables()


def downgrade() -> None:
    drop_file_tables()
