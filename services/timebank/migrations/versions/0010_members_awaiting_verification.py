"""An index for the workers' list of members awaiting verification.

`GET /members/awaiting-verification` pages through a community's members whose birth date no
worker has verified yet, oldest enrolment first. The index is partial: a member leaves it once
verified, so it stays as small as the queue of people still to be seen in person.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_tb_members_awaiting_verification",
        "tb_members",
        ["community", "enrolled_at", "member_id"],
        postgresql_where=sa.text("age_verified_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_tb_members_awaiting_verification", table_name="tb_members")
