"""Reserving a redemption in one statement: `gov_reserve`.

Under contention a redemption's cost is how long it holds two row locks: the resident's account
and the reward's stock. It used to take them inside a transaction of four round trips (BEGIN, the
account lock with the reward read, the reservation, COMMIT), so every lock was held across at
least two round trips to the service, and across whatever else that service's event loop was
doing before it sent the COMMIT. This function does the same steps under the same locks inside
the database, and the caller sends it as a statement of its own (`kit.db.execute_alone`), so the
locks last as long as the function and its commit, and no longer:

1. the resident's account row, created on first use, locked; its debt read under the lock;
2. in a new snapshot (each statement in a PL/pgSQL function sees what committed before it
   started, so every lot is seen as the previous holder of the lock left it), the reservation of
   migration 0001's use case, unchanged: the checks (lots due to expire, the resident's limit,
   the points available after the debt, the stock) and, only when all pass, the writes (lots in
   spending order, the redemption and its allocations, the balance and its statement line, the
   stock);
3. when it was written and the caller passed an event (a service reward, which property
   fulfils), the `governance.redemption.reserved.v1` outbox row.

The caller reads the reward first and applies the pure rules (active, cost, deadline); it expires
due lots (`due` > 0) under the account lock in a transaction of its own and calls again, as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESERVE = r"""
CREATE FUNCTION gov_reserve(
    p_community text, p_resident text, p_reward_id uuid, p_id uuid, p_now timestamptz, p_cost integer,
    p_quantity integer, p_per_resident_limit integer, p_has_stock boolean, p_deadline timestamptz, p_reason text,
    p_event_id text, p_event_topic text, p_event_type text, p_event_source text, p_event_data jsonb,
    p_traceparent text, p_tracestate text)
RETURNS TABLE (due bigint, available bigint, already bigint, checks_passed boolean, created_at timestamptz)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_debt bigint;
    v_outcome record;
BEGIN
    INSERT INTO gov_accounts (community, resident_id) VALUES (p_community, p_resident)
    ON CONFLICT (community, resident_id) DO UPDATE SET debt = gov_accounts.debt
    RETURNING debt INTO v_debt;

    WITH live AS (
        SELECT id, remaining, expires_at FROM gov_lots
        WHERE community = p_community AND resident_id = p_resident AND remaining > 0
    ), ordered AS (
        SELECT id, remaining,
               sum(remaining) OVER (ORDER BY expires_at IS NULL, expires_at, id
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - remaining AS before
        FROM live
    ), verdict AS (
        SELECT (SELECT count(*) FROM live WHERE expires_at IS NOT NULL AND expires_at <= p_now) AS due,
               greatest(coalesce((SELECT sum(remaining) FROM live), 0) - v_debt, 0) AS available,
               CASE WHEN p_per_resident_limit IS NULL THEN 0 ELSE (
                   SELECT coalesce(sum(quantity), 0) FROM gov_redemptions
                   WHERE community = p_community AND resident_id = p_resident AND reward_id = p_reward_id
                     AND status IN ('reserved', 'captured')) END AS already
    ), go AS (
        SELECT 1 FROM verdict
        WHERE verdict.due = 0 AND verdict.available >= p_cost
          AND (p_per_resident_limit IS NULL OR verdict.already + p_quantity <= p_per_resident_limit)
    ), stock AS (
        UPDATE gov_rewards SET stock = stock - p_quantity
        WHERE p_has_stock AND id = p_reward_id AND stock >= p_quantity AND EXISTS (SELECT 1 FROM go)
        RETURNING stock
    ), ok AS (
        SELECT 1 FROM go WHERE NOT p_has_stock OR EXISTS (SELECT 1 FROM stock)
    ), plan AS (
        SELECT id AS lot_id, least(remaining, p_cost - before) AS points FROM ordered
        WHERE before < p_cost AND EXISTS (SELECT 1 FROM ok)
    ), taken AS (
        UPDATE gov_lots SET remaining = gov_lots.remaining - plan.points FROM plan WHERE gov_lots.id = plan.lot_id
    ), redemption AS (
        INSERT INTO gov_redemptions (id, community, resident_id, reward_id, quantity, points, status, deadline)
        SELECT p_id, p_community, p_resident, p_reward_id, p_quantity, p_cost, 'reserved', p_deadline
        FROM ok RETURNING id, created_at
    ), allocation AS (
        INSERT INTO gov_allocations (redemption_id, lot_id, points) SELECT redemption.id, plan.lot_id, plan.points
        FROM redemption, plan
    ), acct AS (
        UPDATE gov_accounts SET balance = balance - p_cost, reserved = reserved + p_cost
        WHERE community = p_community AND resident_id = p_resident AND EXISTS (SELECT 1 FROM ok)
        RETURNING balance
    ), entry AS (
        INSERT INTO gov_entries (community, resident_id, kind, delta, balance_after, ref_type, ref_id, reason)
        SELECT p_community, p_resident, 'spend', -p_cost, acct.balance, 'redemption', p_id::text, p_reason
        FROM acct
    )
    SELECT verdict.due, verdict.available, verdict.already, EXISTS (SELECT 1 FROM go) AS checks_passed,
           (SELECT redemption.created_at FROM redemption) AS created_at
      INTO v_outcome
      FROM verdict;

    IF v_outcome.created_at IS NOT NULL AND p_event_id IS NOT NULL THEN
        INSERT INTO kit_outbox (event_id, topic, key, type, source, subject, occurred_at, data, traceparent,
                                tracestate)
        VALUES (p_event_id, p_event_topic, p_id::text, p_event_type, p_event_source, NULL, p_now, p_event_data,
                p_traceparent, p_tracestate);
    END IF;
    RETURN QUERY SELECT v_outcome.due, v_outcome.available::bigint, v_outcome.already::bigint,
                        v_outcome.checks_passed, v_outcome.created_at;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(RESERVE)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION gov_reserve(text, text, uuid, uuid, timestamptz, integer, integer, integer, boolean, "
        "timestamptz, text, text, text, text, text, jsonb, text, text)"
    )
