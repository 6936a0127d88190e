"""The spot's window list and the community's gate-device list are cursor pages: each gets the
index that serves its keyset order, so a page is a range scan however long the list grows. The
window index leads with spot_id, so it replaces the plain spot_id index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_windows_spot_id_created_at_id", "windows", ["spot_id", "created_at", "id"])
    op.drop_index("ix_windows_spot_id", table_name="windows")
    op.create_index("ix_gate_devices_community_id", "gate_devices", ["community", "id"])


def downgrade() -> None:
    op.drop_index("ix_gate_devices_community_id", table_name="gate_devices")
    op.create_index("ix_windows_spot_id", "windows", ["spot_id"])
    op.drop_index("ix_windows_spot_id_created_at_id", table_name="windows")
