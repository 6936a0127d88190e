"""The security scene: its feed may hold records (the scene checks admit it), and daily statistics
count visitor passes, entries, alarms and alarms by kind.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = (
    ("visitor_passes", sa.Integer()),
    ("entries", sa.BigInteger()),
    ("alarms_raised", sa.Integer()),
    ("alarms_fire", sa.Integer()),
    ("alarms_smoke", sa.Integer()),
    ("alarms_door_forced", sa.Integer()),
    ("alarms_door_held_open", sa.Integer()),
    ("alarms_inactivity", sa.Integer()),
)


# The tables whose `scene` column is checked against the list of scenes (a snapshot, as migrations keep).
SCENE_TABLES = ("feed_counters", "feed_records", "grants")
BEFORE = "scene IN ('timebank', 'parking', 'property', 'governance', 'stats')"
AFTER = "scene IN ('timebank', 'parking', 'property', 'governance', 'security', 'stats')"


def _scene_check(condition: str) -> None:
    for table in SCENE_TABLES:
        op.drop_constraint(f"ck_{table}_scene", table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_scene"), table, condition)


def upgrade() -> None:
    _scene_check(AFTER)
    for name, type_ in COUNTERS:
        op.add_column("daily_stats", sa.Column(name, type_, nullable=False, server_default="0"))


def downgrade() -> None:
    for name, _ in reversed(COUNTERS):
        op.drop_column("daily_stats", name)
    _scene_check(BEFORE)
