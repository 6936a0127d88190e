"""Communities are data: the communities the gateway serves, created by a platform administrator.

Until now a static setting listed the served communities. Existing deployments create their
communities through `PUT /platform/communities/{id}` (or the local demo seed) after this runs.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "communities",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        # The administrative division code (行政区划代码) the city's data platform files the feed under.
        sa.Column("region_code", sa.Text(), nullable=False),
        sa.Column("settings", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        # An inactive community is kept (its data stays) but its tokens are refused.
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_communities"),
    )


def downgrade() -> None:
    op.drop_table("communities")
