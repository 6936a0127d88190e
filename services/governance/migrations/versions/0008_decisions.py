"""Collective choice: decisions, the roll each froze when it opened, ballots (one per voter key), proxies.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uuid_pk() -> "sa.Column[uuid.UUID]":
    return sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _decision_fk() -> "sa.Column[uuid.UUID]":
    return sa.Column("decision_id", postgresql.UUID(as_uuid=True), nullable=False)


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "gov_decisions",
        _uuid_pk(),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("options", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("opens_at", ts, nullable=False),
        sa.Column("closes_at", ts, nullable=False),
        sa.Column("ballots_by_name", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'draft'"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", ts, server_default=sa.func.now(), nullable=False),
        sa.Column("opened_at", ts, nullable=True),
        sa.Column("closed_at", ts, nullable=True),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('owners_ordinary','owners_major','household_poll')", name=op.f("ck_gov_decisions_kind_known")
        ),
        sa.CheckConstraint("status IN ('draft','open','closed')", name=op.f("ck_gov_decisions_status_known")),
        sa.CheckConstraint("closes_at > opens_at", name=op.f("ck_gov_decisions_closes_after_opening")),
        sa.CheckConstraint("cardinality(options) >= 2", name=op.f("ck_gov_decisions_two_options")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gov_decisions")),
    )
    op.create_index("ix_gov_decisions_community", "gov_decisions", ["community", "created_at"])
    op.create_index("ix_gov_decisions_due", "gov_decisions", ["closes_at"], postgresql_where=sa.text("status = 'open'"))
    op.create_table(
        "gov_decision_units",
        _decision_fk(),
        sa.Column("household_id", sa.Text(), nullable=False),
        sa.Column("area", sa.Integer(), nullable=False),
        sa.Column("owner_key", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["gov_decisions.id"], name=op.f("fk_gov_decision_units_decision_id_gov_decisions")
        ),
        sa.PrimaryKeyConstraint("decision_id", "household_id", name=op.f("pk_gov_decision_units")),
    )
    op.create_table(
        "gov_decision_voters",
        _decision_fk(),
        sa.Column("resident_id", sa.Text(), nullable=False),
        sa.Column("household_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["gov_decisions.id"], name=op.f("fk_gov_decision_voters_decision_id_gov_decisions")
        ),
        sa.PrimaryKeyConstraint("decision_id", "resident_id", name=op.f("pk_gov_decision_voters")),
    )
    op.create_table(
        "gov_ballots",
        _uuid_pk(),
        _decision_fk(),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("voter_key", sa.Text(), nullable=False),
        sa.Column("household_id", sa.Text(), nullable=False),
        sa.Column("option", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("cast_by", sa.Text(), nullable=False),
        sa.Column("on_behalf_of", sa.Text(), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.Column("cast_at", ts, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("channel IN ('app','proxy','paper')", name=op.f("ck_gov_ballots_channel_known")),
        sa.ForeignKeyConstraint(["decision_id"], ["gov_decisions.id"], name=op.f("fk_gov_ballots_decision_id_gov_decisions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gov_ballots")),
        sa.UniqueConstraint("decision_id", "voter_key", name="uq_gov_ballots_one_per_voter"),
        sa.UniqueConstraint("receipt", name=op.f("uq_gov_ballots_receipt")),
    )
    op.create_table(
        "gov_proxy_authorisations",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("proxy_id", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("recorded_at", ts, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("community", "owner_id", "proxy_id", name=op.f("pk_gov_proxy_authorisations")),
    )


def downgrade() -> None:
    for table in ("gov_proxy_authorisations", "gov_ballots", "gov_decision_voters", "gov_decision_units", "gov_decisions"):
        op.drop_table(table)
