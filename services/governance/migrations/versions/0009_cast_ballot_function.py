"""Collective choice in one statement per ballot, and the proxy's basis kept on the ballot.

`gov_cast_ballot` (sql/gov_cast_ballot.sql) does a ballot's checks and writes in one call. A
recorded proxy has a basis, `written` (授权委托书 seen by a worker) or `relative` (a registered relative
of an elder, verified by a worker), and a proxy ballot keeps the basis it was cast on.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.sqlfiles import create_function

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "gov_proxy_authorisations", sa.Column("basis", sa.Text(), server_default=sa.text("'written'"), nullable=False)
    )
    op.add_column("gov_proxy_authorisations", sa.Column("relation", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_gov_proxy_authorisations_basis_known"), "gov_proxy_authorisations", "basis IN ('written','relative')"
    )
    op.add_column("gov_ballots", sa.Column("proxy_basis", sa.Text(), nullable=True))
    create_function("governance", "gov_cast_ballot")


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION gov_cast_ballot(text, uuid, text, text, text, text, text, text, uuid, text, timestamptz, text,"
        " text, text, text, text, text, text)"
    )
    op.drop_column("gov_ballots", "proxy_basis")
    op.drop_constraint(op.f("ck_gov_proxy_authorisations_basis_known"), "gov_proxy_authorisations")
    op.drop_column("gov_proxy_authorisations", "relation")
    op.drop_column("gov_proxy_authorisations", "basis")
