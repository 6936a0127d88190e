"""Collective choice in one statement per ballot, and the proxy's basis kept on the ballot.

`gov_cast_ballot` (sql/gov_cast_ballot.sql) does a ballot's checks and writes in one call; the
owners of a frozen roll (owner key, the area of all their units) are kept when a decision opens, so
the tally is one join of ballots to owners, grouped by option. A
recorded proxy has a basis, `written` (授权委托书 seen by a worker) or `relative` (a registered relative
of an elder, verified by a worker), and a proxy ballot keeps the basis it was cast on.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.kit.sqlfiles import create_function

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("gov_proxy_authorisations", sa.Column("basis", sa.Text(), server_default=sa.text("'written'"), nullable=False))
    op.add_column("gov_proxy_authorisations", sa.Column("relation", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_gov_proxy_authorisations_basis_known"), "gov_proxy_authorisations", "basis IN ('written','relative')"
    )
    op.add_column("gov_ballots", sa.Column("proxy_basis", sa.Text(), nullable=True))
    op.create_table(
        "gov_decision_owners",
        sa.Column("decision_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("owner_key", sa.Text(), nullable=False),
        sa.Column("area", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["gov_decisions.id"], name=op.f("fk_gov_decision_owners_decision_id_gov_decisions")
        ),
        sa.PrimaryKeyConstraint("decision_id", "owner_key", name=op.f("pk_gov_decision_owners")),
    )
    # Decisions opened before this revision get their owners from their frozen units.
    op.execute(
        "INSERT INTO gov_decision_owners (decision_id, owner_key, area)"
        " SELECT decision_id, owner_key, sum(area) FROM gov_decision_units GROUP BY decision_id, owner_key"
    )
    create_function("governance", "gov_cast_ballot")


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION gov_cast_ballot(text, uuid, text, text, text, text, text, text, uuid, text, timestamptz, text,"
        " text, text, text, text, text, text)"
    )
    op.drop_table("gov_decision_owners")
    op.drop_column("gov_ballots", "proxy_basis")
    op.drop_constraint(op.f("ck_gov_proxy_authorisations_basis_known"), "gov_proxy_authorisations")
    op.drop_column("gov_proxy_authorisations", "relation")
    op.drop_column("gov_proxy_authorisations", "basis")
