"""Every list is a cursor page. Passes get `issued_seq`, drawn under the community's issuing lock so
numbers commit in order: a door pages through its building's passes, and resumes a later sync,
after the last number it kept without missing one committed late. Existing passes are numbered in
the order they were issued. Each list gets the index that serves its keyset order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("pass_issue_seq")))
    op.add_column("passes", sa.Column("issued_seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE passes p SET issued_seq = n.seq FROM "
        "(SELECT id, nextval('pass_issue_seq') AS seq FROM (SELECT id FROM passes ORDER BY created_at, id) ordered) n "
        "WHERE p.id = n.id"
    )
    op.alter_column("passes", "issued_seq", nullable=False)
    op.create_index("ix_passes_building_issued", "passes", ["community", "building_id", "issued_seq"])
    op.drop_index("ix_passes_resident", table_name="passes")
    op.create_index("ix_passes_resident", "passes", ["community", "resident_id", "created_at", "id"])
    op.drop_index("ix_passes_building_day", table_name="passes")
    op.create_index("ix_passes_building_day", "passes", ["community", "building_id", "valid_from", "id"])
    op.create_index("ix_devices_building", "devices", ["community", "building_id", "id"])
    op.create_index("ix_watches_relative", "watches", ["community", "relative_id", "id"])
    op.create_index("ix_alarms_community_raised", "alarms", ["community", "raised_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_alarms_community_raised", table_name="alarms")
    op.drop_index("ix_watches_relative", table_name="watches")
    op.drop_index("ix_devices_building", table_name="devices")
    op.drop_index("ix_passes_building_day", table_name="passes")
    op.create_index("ix_passes_building_day", "passes", ["community", "building_id", "valid_from"])
    op.drop_index("ix_passes_resident", table_name="passes")
    op.create_index("ix_passes_resident", "passes", ["community", "resident_id", "created_at"])
    op.drop_index("ix_passes_building_issued", table_name="passes")
    op.drop_column("passes", "issued_seq")
    op.execute(sa.schema.DropSequence(sa.Sequence("pass_issue_seq")))
