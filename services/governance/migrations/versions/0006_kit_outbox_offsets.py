"""The kit's outbox remembers what the broker acknowledged, and sets aside what it never will.

`kit_outbox` gains the partition and offset each event was acknowledged at and `set_aside_at`;
`kit_outbox_partitions` keeps each partition's last acknowledged offset, so the relay notices a
broker that lost events and sends them again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from services.kit.migrations import upgrade_kit_tables

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    upgrade_kit_tables()


def downgrade() -> None:
    # Earlier code neither reads nor writes the added columns and table; they stay.
    pass
