"""Scheduled jobs run once per period across replicas: the kit's `kit_job_runs` table records which
replica claimed each job's period (services/kit/job_runs.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

from services.kit.migrations import upgrade_kit_tables

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    upgrade_kit_tables()


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS kit_job_runs")
