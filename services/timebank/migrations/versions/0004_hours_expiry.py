"""Hours expire: a validity period per community, and `expiry` transfers to the pool.

`tb_community_settings.hours_valid_months` (default 36, 1..600) says how long credited hours stay
valid where `hours_expire` is on; existing communities get the default. The transfers' `kind`
CHECK admits `expiry`, the transfer that moves a member's expired hours to the pool.

Downgrading refuses while `expiry` transfers exist: the old CHECK does not admit them, and the
ledger keeps every transfer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("service", "spend", "gift", "donation", "funding", "overflow", "reversal")


def _kind_check(kinds: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_tb_transfers_kind"), "tb_transfers", type_="check")
    op.create_check_constraint(
        op.f("ck_tb_transfers_kind"), "tb_transfers", "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"
    )


def upgrade() -> None:
    op.add_column(
        "tb_community_settings", sa.Column("hours_valid_months", sa.Integer(), server_default=sa.text("36"), nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_tb_community_settings_hours_valid_months"), "tb_community_settings", "hours_valid_months BETWEEN 1 AND 600"
    )
    _kind_check((*KINDS, "expiry"))


def downgrade() -> None:
    _kind_check(KINDS)
    op.drop_constraint(op.f("ck_tb_community_settings_hours_valid_months"), "tb_community_settings", type_="check")
    op.drop_column("tb_community_settings", "hours_valid_months")
