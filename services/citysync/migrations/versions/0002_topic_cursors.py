"""City topics are written in batches by a job, which keeps its place per feed here.

Revision ID: 0002
Revises: 0001

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "topic_cursors",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("scene", sa.Text(), nullable=False),
        sa.Column("published_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("community", "scene", name=op.f("pk_topic_cursors")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("topic_cursors")
