"""The time bank's ledger, members and care requests.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.migrations import create_kit_tables, drop_kit_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables()
    op.create_table(
        "tb_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('member', 'pool', 'community')", name=op.f("ck_tb_accounts_kind")),
        sa.CheckConstraint(
            "NOT debits_must_not_exceed_credits OR debits_posted + debits_pending <= credits_posted",
            name=op.f("ck_tb_accounts_debits_within_credits"),
        ),
        sa.CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name=op.f("ck_tb_accounts_non_negative_totals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tb_accounts")),
        sa.UniqueConstraint("community", "kind", "owner_id", name="uq_tb_accounts_owner", postgresql_nulls_not_distinct=True),
    )
    op.create_table(
        "tb_care_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("elder_id", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("service_type", sa.Text(), nullable=False),
        sa.Column("place", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes_estimated", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("volunteer_id", sa.Text(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'accepted', 'in_progress', 'logged', 'confirmed', 'disputed', 'expired', 'cancelled')",
            name=op.f("ck_tb_care_requests_status"),
        ),
        sa.CheckConstraint(
            "checked_out_at IS NULL OR checked_out_at > checked_in_at", name=op.f("ck_tb_care_requests_checkout_after_checkin")
        ),
        sa.CheckConstraint("minutes_estimated > 0", name=op.f("ck_tb_care_requests_minutes_estimated")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tb_care_requests")),
        sa.UniqueConstraint("transfer_id", name=op.f("uq_tb_care_requests_transfer_id")),
    )
    op.create_index(
        "ix_tb_care_requests_open",
        "tb_care_requests",
        ["community", "starts_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "tb_community_settings",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("withdrawal_age", sa.Integer(), nullable=False),
        sa.Column("storage_cap_minutes", sa.Integer(), nullable=False),
        sa.Column("min_balance_before_first_withdrawal", sa.Integer(), nullable=False),
        sa.Column("confirmation_timeout_minutes", sa.Integer(), nullable=False),
        sa.Column("hours_expire", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("confirmation_timeout_minutes > 0", name=op.f("ck_tb_community_settings_confirmation_timeout")),
        sa.CheckConstraint("min_balance_before_first_withdrawal >= 0", name=op.f("ck_tb_community_settings_min_balance")),
        sa.CheckConstraint("storage_cap_minutes > 0", name=op.f("ck_tb_community_settings_storage_cap")),
        sa.CheckConstraint("withdrawal_age IN (60, 65)", name=op.f("ck_tb_community_settings_withdrawal_age")),
        sa.PrimaryKeyConstraint("community", name=op.f("pk_tb_community_settings")),
    )
    op.create_table(
        "tb_failed_transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("problem_slug", sa.Text(), nullable=False),
        sa.Column("detail_zh", sa.Text(), nullable=True),
        sa.Column("detail_en", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tb_failed_transfers")),
    )
    op.create_table(
        "tb_relatives",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("relative_id", sa.Text(), nullable=False),
        sa.Column("relation", sa.Text(), nullable=False),
        sa.Column("verified_by", sa.Text(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("member_id <> relative_id", name=op.f("ck_tb_relatives_not_self")),
        sa.PrimaryKeyConstraint("community", "member_id", "relative_id", name=op.f("pk_tb_relatives")),
    )
    op.create_table(
        "tb_members",
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("is_volunteer", sa.Boolean(), nullable=False),
        sa.Column("is_elder", sa.Boolean(), nullable=False),
        sa.Column("priority_elder", sa.Boolean(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("age_verified_by", sa.Text(), nullable=True),
        sa.Column("age_verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_withdrawal_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["tb_accounts.id"], name=op.f("fk_tb_members_account_id_tb_accounts")),
        sa.PrimaryKeyConstraint("community", "member_id", name=op.f("pk_tb_members")),
        sa.UniqueConstraint("account_id", name=op.f("uq_tb_members_account_id")),
    )
    op.create_table(
        "tb_transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("debit_account_id", sa.Uuid(), nullable=False),
        sa.Column("credit_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minutes", sa.Integer(), nullable=False),
        sa.Column("pending_id", sa.Uuid(), nullable=True),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        sa.Column("care_request_id", sa.Uuid(), nullable=True),
        sa.Column("service_type", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("debit_balance_after", sa.BigInteger(), nullable=True),
        sa.Column("credit_balance_after", sa.BigInteger(), nullable=True),
        sa.Column("timeout_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('service', 'spend', 'gift', 'donation', 'funding', 'overflow', 'reversal')",
            name=op.f("ck_tb_transfers_kind"),
        ),
        sa.CheckConstraint("phase IN ('pending', 'posted', 'voided')", name=op.f("ck_tb_transfers_phase")),
        sa.CheckConstraint("resolution IN ('posted', 'voided', 'expired')", name=op.f("ck_tb_transfers_resolution")),
        sa.CheckConstraint("resolution IS NULL OR phase = 'pending'", name=op.f("ck_tb_transfers_resolution_only_pending")),
        sa.CheckConstraint("amount_minutes > 0", name=op.f("ck_tb_transfers_amount_positive")),
        sa.CheckConstraint("debit_account_id <> credit_account_id", name=op.f("ck_tb_transfers_distinct_accounts")),
        sa.ForeignKeyConstraint(
            ["care_request_id"], ["tb_care_requests.id"], name=op.f("fk_tb_transfers_care_request_id_tb_care_requests")
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"], ["tb_accounts.id"], name=op.f("fk_tb_transfers_credit_account_id_tb_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"], ["tb_accounts.id"], name=op.f("fk_tb_transfers_debit_account_id_tb_accounts")
        ),
        sa.ForeignKeyConstraint(["pending_id"], ["tb_transfers.id"], name=op.f("fk_tb_transfers_pending_id_tb_transfers")),
        sa.ForeignKeyConstraint(["reverses_id"], ["tb_transfers.id"], name=op.f("fk_tb_transfers_reverses_id_tb_transfers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tb_transfers")),
        sa.UniqueConstraint("seq", name=op.f("uq_tb_transfers_seq")),
    )
    op.create_index("ix_tb_transfers_credit_seq", "tb_transfers", ["credit_account_id", "seq"], unique=False)
    op.create_index("ix_tb_transfers_debit_seq", "tb_transfers", ["debit_account_id", "seq"], unique=False)
    op.create_index(
        "ix_tb_transfers_open_pending",
        "tb_transfers",
        ["community", "timeout_at"],
        unique=False,
        postgresql_where=sa.text("phase = 'pending' AND resolution IS NULL"),
    )
    op.create_index("uq_tb_transfers_pending_id", "tb_transfers", ["pending_id"], unique=True)
    op.create_index("uq_tb_transfers_reverses_id", "tb_transfers", ["reverses_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_tb_transfers_reverses_id", table_name="tb_transfers")
    op.drop_index("uq_tb_transfers_pending_id", table_name="tb_transfers")
    op.drop_index(
        "ix_tb_transfers_open_pending",
        table_name="tb_transfers",
        postgresql_where=sa.text("phase = 'pending' AND resolution IS NULL"),
    )
    op.drop_index("ix_tb_transfers_debit_seq", table_name="tb_transfers")
    op.drop_index("ix_tb_transfers_credit_seq", table_name="tb_transfers")
    op.drop_table("tb_transfers")
    op.drop_table("tb_members")
    op.drop_table("tb_relatives")
    op.drop_table("tb_failed_transfers")
    op.drop_table("tb_community_settings")
    op.drop_index("ix_tb_care_requests_open", table_name="tb_care_requests", postgresql_where=sa.text("status = 'open'"))
    op.drop_table("tb_care_requests")
    op.drop_table("tb_accounts")
    drop_kit_tables()
