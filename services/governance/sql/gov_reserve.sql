-- Reserving a redemption in one statement. Under contention a redemption costs as long as it holds
-- two row locks, the resident's account and the reward's stock; the caller sends this as a statement
-- of its own (kit.db.fetch_alone), so the locks last as long as the function and its commit:
--   1. the resident's account row, locked (gov_hold_account); its debt read under the lock;
--   2. in a new snapshot (each statement of a PL/pgSQL function sees what committed before it
--      started, so every lot is seen as the previous lock holder left it): the checks (lots due to
--      expire, the resident's limit, the points available after the debt, the stock) and, only when
--      all pass, the writes (lots in spending order, the redemption and its allocations, the balance
--      and its statement line, the stock);
--   3. when it was written and the caller passed an event (a service reward, which property
--      fulfils), the governance.redemption.reserved.v1 event, through the kit's outbox writer.
-- The spending order, the points available and the resident's limit are also Python rules
-- (domain.plan_spend, domain.within_resident_limit); tests/governance/test_sql_rules.py feeds both
-- the same cases. Lots due to expire are not handled here: due > 0 sends the caller to expire them
-- (with their statement lines) under the account lock and call again.
CREATE OR REPLACE FUNCTION gov_reserve(
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
    SELECT h.debt INTO v_debt FROM gov_hold_account(p_community, p_resident) AS h;

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
        PERFORM kit_write_outbox(p_event_id, p_event_topic, p_id::text, p_event_type, p_event_source, NULL, p_now,
                                 p_event_data, p_traceparent, p_tracestate);
    END IF;
    RETURN QUERY SELECT v_outcome.due, v_outcome.available::bigint, v_outcome.already::bigint,
                        v_outcome.checks_passed, v_outcome.created_at;
END
$fn$;
