"""Every list is a cursor page: each gets the index that serves its keyset order. Decisions and
pledge offers add the tie-breaking id to their community index; a resident's live lots get a
partial index in spending order; the voters gain the resident-first index "my decisions" needs.
Named ballots page in voter-key order, which the ballots' primary key serves.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_gov_decisions_community", table_name="gov_decisions")
    op.create_index("ix_gov_decisions_community", "gov_decisions", ["community", "created_at", "id"])
    op.drop_index("ix_gov_pledge_offers_community", table_name="gov_pledge_offers")
    op.create_index("ix_gov_pledge_offers_community", "gov_pledge_offers", ["community", "created_at", "id"])
    live = sa.text("remaining > 0")
    op.create_index("ix_gov_lots_live", "gov_lots", ["community", "resident_id", "expires_at", "id"], postgresql_where=live)
    op.create_index("ix_gov_decision_voters_resident", "gov_decision_voters", ["resident_id", "decision_id"])


def downgrade() -> None:
    op.drop_index("ix_gov_decision_voters_resident", table_name="gov_decision_voters")
    op.drop_index("ix_gov_lots_live", table_name="gov_lots")
    op.drop_index("ix_gov_pledge_offers_community", table_name="gov_pledge_offers")
    op.create_index("ix_gov_pledge_offers_community", "gov_pledge_offers", ["community", "created_at"])
    op.drop_index("ix_gov_decisions_community", table_name="gov_decisions")
    op.create_index("ix_gov_decisions_community", "gov_decisions", ["community", "created_at"])
