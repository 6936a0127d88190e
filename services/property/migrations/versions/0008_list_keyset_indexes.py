"""A ticket's steps and payments are cursor pages: each gets the index that serves its keyset
order. The steps index leads with ticket_id, so it replaces the plain ticket_id index; payments had
no index by ticket at all outside the partial one on live orders.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ticket_steps_ticket_id_id", "ticket_steps", ["ticket_id", "id"])
    op.drop_index("ix_ticket_steps_ticket_id", table_name="ticket_steps")
    op.create_index("ix_payment_orders_ticket_id_created_at_id", "payment_orders", ["ticket_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_payment_orders_ticket_id_created_at_id", table_name="payment_orders")
    op.create_index("ix_ticket_steps_ticket_id", "ticket_steps", ["ticket_id"])
    op.drop_index("ix_ticket_steps_ticket_id_id", table_name="ticket_steps")
