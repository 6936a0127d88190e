"""The time bank's database functions, each created from its file in `services/timebank/sql/`.

`tb_confirm_service` keeps its signature and behaviour; its rules now sit in functions of their
own (`tb_lock_transfer_id`, `tb_may_resolve`, `tb_confirmed_minutes`, `tb_cap_overflow`,
`tb_debit_allowed`) that the Python use cases call or that tests feed with the Python twin's
cases, and its event goes through the kit's `kit_write_outbox`, so no time-bank function names
the outbox's columns. Migration 0002 keeps the body it created, as history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import runpy
from collections.abc import Sequence
from pathlib import Path

from alembic import op

from services.kit.sqlfiles import create_function, create_kit_functions

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Called by tb_confirm_service, so created before it.
RULES = ("tb_lock_transfer_id", "tb_may_resolve", "tb_confirmed_minutes", "tb_cap_overflow", "tb_debit_allowed")
RULE_SIGNATURES = (
    "tb_lock_transfer_id(uuid, text, text)",
    "tb_may_resolve(text, text, text, text, boolean, boolean)",
    "tb_confirmed_minutes(integer, integer)",
    "tb_cap_overflow(bigint, bigint)",
    "tb_debit_allowed(boolean, bigint, bigint)",
)


def upgrade() -> None:
    create_kit_functions()
    for name in RULES:
        create_function("timebank", name)
    create_function("timebank", "tb_confirm_service")


def downgrade() -> None:
    created_by_0002 = runpy.run_path(str(Path(__file__).with_name("0002_confirm_function.py")))["CONFIRM_SERVICE"]
    op.execute(created_by_0002.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    for signature in RULE_SIGNATURES:
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP FUNCTION kit_write_outbox(text, text, text, text, text, text, timestamptz, jsonb, text, text)")
