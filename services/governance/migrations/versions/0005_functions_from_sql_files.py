"""Governance's database functions from their files in `services/governance/sql/`.

`gov_grant` and `gov_reserve` write their events through the kit's `kit_write_outbox`, so no
governance function names the outbox's columns. They take the account lock and the budget through
`gov_hold_account` and `gov_draw_budget` and credit lots through `gov_credit_lot` (the debt paid
first), which the Python use cases call too, so each of those statements is written once. The
bodies of 0003 (`gov_reserve`) and 0004 (`gov_grant`) stay there as the snapshots a downgrade
restores.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

from services.kit.sqlfiles import create_function, create_kit_functions

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = ("gov_hold_account", "gov_draw_budget", "gov_credit_lot", "gov_grant", "gov_reserve")


def upgrade() -> None:
    create_kit_functions()
    for name in FUNCTIONS:
        create_function("governance", name)


def _revision(filename: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), Path(__file__).with_name(filename))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    for filename, snapshot in (("0003_reserve_function.py", "RESERVE"), ("0004_points_granted_event.py", "GRANT")):
        body: str = getattr(_revision(filename), snapshot)
        op.execute(body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("DROP FUNCTION gov_credit_lot(text, text, bigint, integer, timestamptz, text, text, text, text, uuid)")
    op.execute("DROP FUNCTION gov_draw_budget(text, integer)")
    op.execute("DROP FUNCTION gov_hold_account(text, text)")
    op.execute("DROP FUNCTION kit_write_outbox(text, text, text, text, text, text, timestamptz, jsonb, text, text)")
