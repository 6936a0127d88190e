"""Security's tables: devices, pass keys, passes, credentials, access events, watches, alarms and the
directory of property's residents and buildings.

Revision ID: 0001
Revises:
Create Date: 2026-12-05 18:33:17.416818
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.migrations import create_kit_tables, drop_kit_tables
from services.kit.sqlfiles import create_function, create_kit_functions

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables()
    op.execute(sa.schema.CreateSequence(sa.Sequence("pass_revocation_seq")))
    create_kit_functions()
    op.create_table(
        "access_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("device_event_id", sa.String(), nullable=False),
        sa.Column("building_id", sa.String(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("credential_kind", sa.String(), nullable=False),
        sa.Column("credential_id", sa.String(), nullable=True),
        sa.Column("pass_id", sa.String(), nullable=True),
        sa.Column("plate", sa.String(), nullable=True),
        sa.Column("household_id", sa.String(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("credential_kind IN ('card', 'face', 'pass', 'plate')", name=op.f("ck_access_events_credential_kind")),
        sa.CheckConstraint("direction IN ('activity', 'in', 'out')", name=op.f("ck_access_events_direction")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_events")),
        sa.UniqueConstraint("device_id", "device_event_id", name=op.f("uq_access_events_device_id_device_event_id")),
    )
    op.create_index("ix_access_events_door", "access_events", ["community", "device_id", "occurred_at"], unique=False)
    op.create_index("ix_access_events_household", "access_events", ["community", "household_id", "occurred_at"], unique=False)
    op.create_index("ix_access_events_occurred_at", "access_events", ["occurred_at"], unique=False)
    op.create_table(
        "alarms",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("incident_key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("building_id", sa.String(), nullable=False),
        sa.Column("household_id", sa.String(), nullable=True),
        sa.Column("device_id", sa.String(), nullable=True),
        sa.Column("watch_id", sa.String(), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('door_forced', 'door_held_open', 'fire', 'inactivity', 'smoke')", name=op.f("ck_alarms_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
        sa.UniqueConstraint("community", "incident_key", name=op.f("uq_alarms_community_incident_key")),
    )
    op.create_index(
        "ix_alarms_open_watch",
        "alarms",
        ["watch_id"],
        unique=False,
        postgresql_where=sa.text("cleared_at IS NULL AND watch_id IS NOT NULL"),
    )
    op.create_table(
        "buildings",
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("building_id", sa.String(), nullable=False),
        sa.Column("steward_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("community", "building_id", name=op.f("pk_buildings")),
    )
    op.create_table(
        "credentials",
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("credential_id", sa.String(), nullable=False),
        sa.Column("household_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("community", "credential_id", name=op.f("pk_credentials")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("building_id", sa.String(), nullable=False),
        sa.Column("household_id", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("heartbeat_s", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("offline_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('camera', 'door', 'gate', 'sensor', 'smoke')", name=op.f("ck_devices_kind")),
        sa.CheckConstraint("heartbeat_s BETWEEN 10 AND 86400", name=op.f("ck_devices_heartbeat_s")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(
        "ix_devices_silence", "devices", ["last_seen_at"], unique=False, postgresql_where=sa.text("offline_since IS NULL")
    )
    op.create_table(
        "pass_keys",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("private_raw", sa.LargeBinary(), nullable=False),
        sa.Column("public_raw", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pass_keys")),
    )
    op.create_index(
        "uq_pass_keys_current", "pass_keys", ["community"], unique=True, postgresql_where=sa.text("retired_at IS NULL")
    )
    op.create_table(
        "passes",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("resident_id", sa.String(), nullable=False),
        sa.Column("household_id", sa.String(), nullable=False),
        sa.Column("building_id", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("plate", sa.String(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_entries", sa.Integer(), nullable=True),
        sa.Column("entries_used", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("max_entries IS NULL OR entries_used <= max_entries", name=op.f("ck_passes_entries_used")),
        sa.CheckConstraint("max_entries IS NULL OR max_entries > 0", name=op.f("ck_passes_max_entries")),
        sa.CheckConstraint("valid_until > valid_from", name=op.f("ck_passes_window")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passes")),
    )
    op.create_index("ix_passes_building_day", "passes", ["community", "building_id", "valid_from"], unique=False)
    op.create_index("ix_passes_code", "passes", ["community", "code", "valid_until"], unique=False)
    op.create_index("ix_passes_resident", "passes", ["community", "resident_id", "created_at"], unique=False)
    op.create_index(
        "ix_passes_revoked",
        "passes",
        ["community", "revoked_seq"],
        unique=False,
        postgresql_where=sa.text("revoked_seq IS NOT NULL"),
    )
    op.create_table(
        "residents",
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("resident_id", sa.String(), nullable=False),
        sa.Column("household_id", sa.String(), nullable=False),
        sa.Column("building_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("community", "resident_id", name=op.f("pk_residents")),
    )
    op.create_table(
        "watches",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("community", sa.String(), nullable=False),
        sa.Column("elder_id", sa.String(), nullable=False),
        sa.Column("household_id", sa.String(), nullable=False),
        sa.Column("building_id", sa.String(), nullable=False),
        sa.Column("relative_id", sa.String(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("hours BETWEEN 1 AND 168", name=op.f("ck_watches_hours")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watches")),
        sa.UniqueConstraint("community", "elder_id", name=op.f("uq_watches_community_elder_id")),
    )
    op.create_index(
        "ix_watches_due", "watches", ["last_activity_at"], unique=False, postgresql_where=sa.text("consented_at IS NOT NULL")
    )

    create_function("security", "security_ingest")


def downgrade() -> None:
    op.drop_table("watches")
    op.drop_table("residents")
    op.drop_index("ix_passes_revoked", table_name="passes", postgresql_where=sa.text("revoked_seq IS NOT NULL"))
    op.drop_index("ix_passes_resident", table_name="passes")
    op.drop_index("ix_passes_code", table_name="passes")
    op.drop_index("ix_passes_building_day", table_name="passes")
    op.drop_table("passes")
    op.drop_index("uq_pass_keys_current", table_name="pass_keys", postgresql_where=sa.text("retired_at IS NULL"))
    op.drop_table("pass_keys")
    op.drop_index("ix_devices_silence", table_name="devices", postgresql_where=sa.text("offline_since IS NULL"))
    op.drop_table("devices")
    op.drop_table("credentials")
    op.drop_table("buildings")
    op.drop_index(
        "ix_alarms_open_watch", table_name="alarms", postgresql_where=sa.text("cleared_at IS NULL AND watch_id IS NOT NULL")
    )
    op.drop_table("alarms")
    op.drop_index("ix_access_events_occurred_at", table_name="access_events")
    op.drop_index("ix_access_events_household", table_name="access_events")
    op.drop_index("ix_access_events_door", table_name="access_events")
    op.drop_table("access_events")
    op.execute("DROP FUNCTION IF EXISTS security_ingest")
    op.execute(sa.schema.DropSequence(sa.Sequence("pass_revocation_seq")))
    drop_kit_tables()
