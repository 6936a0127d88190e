"""Service pledges (集体选购): offers and one pledge per household.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "gov_pledge_offers",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("service_code", sa.Text(), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("min_households", sa.Integer(), nullable=False),
        sa.Column("deadline", ts, nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'open'"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", ts, server_default=sa.func.now(), nullable=False),
        sa.Column("settled_at", ts, nullable=True),
        sa.CheckConstraint("status IN ('open','reached','lapsed')", name=op.f("ck_gov_pledge_offers_status_known")),
        sa.CheckConstraint("min_households >= 1", name=op.f("ck_gov_pledge_offers_min_households_positive")),
        sa.CheckConstraint("price_fen > 0", name=op.f("ck_gov_pledge_offers_price_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gov_pledge_offers")),
    )
    op.create_index("ix_gov_pledge_offers_community", "gov_pledge_offers", ["community", "created_at"])
    op.create_index("ix_gov_pledge_offers_due", "gov_pledge_offers", ["deadline"], postgresql_where=sa.text("status = 'open'"))
    op.create_table(
        "gov_pledges",
        sa.Column("offer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("household_id", sa.Text(), nullable=False),
        sa.Column("resident_id", sa.Text(), nullable=False),
        sa.Column("pledged_at", ts, server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["offer_id"], ["gov_pledge_offers.id"], name=op.f("fk_gov_pledges_offer_id_gov_pledge_offers")),
        sa.PrimaryKeyConstraint("offer_id", "household_id", name=op.f("pk_gov_pledges")),
    )


def downgrade() -> None:
    op.drop_table("gov_pledges")
    op.drop_index("ix_gov_pledge_offers_due", table_name="gov_pledge_offers")
    op.drop_index("ix_gov_pledge_offers_community", table_name="gov_pledge_offers")
    op.drop_table("gov_pledge_offers")
