"""The daily statistics count the alarms answered and take the median of their response times
(`daily_alarm_responses`: one number per answered alarm on its day).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("daily_stats", sa.Column("alarms_answered", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "daily_alarm_responses",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_alarm_responses")),
    )
    op.create_index("ix_daily_alarm_responses_day", "daily_alarm_responses", ["community", "day"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_daily_alarm_responses_day", table_name="daily_alarm_responses")
    op.drop_table("daily_alarm_responses")
    op.drop_column("daily_stats", "alarms_answered")
