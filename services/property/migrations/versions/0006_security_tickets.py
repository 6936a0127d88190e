"""System-filed tickets: security's alarms and device outages open urgent tickets with no resident
and no household (so no resident ever sees them), once per incident.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("source", sa.Text(), server_default=sa.text("'resident'"), nullable=False))
    op.add_column("tickets", sa.Column("incident_id", sa.Text(), nullable=True))
    op.alter_column("tickets", "resident_id", existing_type=sa.Text(), nullable=True)
    op.alter_column("tickets", "household_id", existing_type=sa.Text(), nullable=True)
    op.create_unique_constraint(op.f("uq_tickets_incident_id"), "tickets", ["incident_id"])
    op.create_check_constraint(op.f("ck_tickets_source"), "tickets", "source IN ('resident','security')")
    op.create_check_constraint(
        op.f("ck_tickets_filed_by"),
        "tickets",
        "CASE source WHEN 'resident' THEN resident_id IS NOT NULL AND household_id IS NOT NULL"
        " ELSE resident_id IS NULL AND household_id IS NULL AND incident_id IS NOT NULL END",
    )


def downgrade() -> None:
    op.execute("DELETE FROM tickets WHERE source <> 'resident'")
    op.drop_constraint(op.f("ck_tickets_filed_by"), "tickets", type_="check")
    op.drop_constraint(op.f("ck_tickets_source"), "tickets", type_="check")
    op.drop_constraint(op.f("uq_tickets_incident_id"), "tickets", type_="unique")
    op.alter_column("tickets", "household_id", existing_type=sa.Text(), nullable=False)
    op.alter_column("tickets", "resident_id", existing_type=sa.Text(), nullable=False)
    op.drop_column("tickets", "incident_id")
    op.drop_column("tickets", "source")
