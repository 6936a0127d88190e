"""An elder may ask for copies of their time-bank messages to go to their verified relatives:
`people.copy_to_relatives`, and `relatives`, the family links the time bank verified.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("people", sa.Column("copy_to_relatives", sa.Boolean(), server_default="false", nullable=False))
    op.create_table(
        "relatives",
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(), nullable=False),
        sa.Column("relative_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("community", "person_id", "relative_id", name=op.f("pk_relatives")),
    )


def downgrade() -> None:
    op.drop_table("relatives")
    op.drop_column("people", "copy_to_relatives")
