-- Credit points to a locked account (gov_hold_account) as a new lot, in one statement: a debt left
-- by a clawback or deduction is paid first (least of the debt and the points), the rest kept in the
-- lot; a grant points at its lot; the balance and the debt move; the statement line records the
-- balance after. Grants (gov_grant) and awards (accounts.credit_lot) both credit through here, so
-- the rule is written once. `p_debt` is the debt read under the caller's lock.
CREATE OR REPLACE FUNCTION gov_credit_lot(
    p_community text, p_resident text, p_debt bigint, p_points integer, p_expires_at timestamptz,
    p_kind text, p_ref_type text, p_ref_id text, p_reason text, p_grant_id uuid,
    OUT balance bigint, OUT lot_id bigint, OUT paid integer)
LANGUAGE sql AS $fn$
    WITH settled AS (
        SELECT least(p_debt, p_points)::integer AS paid
    ), lot AS (
        INSERT INTO gov_lots (community, resident_id, points, remaining, expires_at)
        SELECT p_community, p_resident, p_points, p_points - settled.paid, p_expires_at FROM settled
        RETURNING id
    ), g AS (
        UPDATE gov_grants SET lot_id = (SELECT id FROM lot) WHERE id = p_grant_id
    ), a AS (
        UPDATE gov_accounts SET balance = gov_accounts.balance + p_points, debt = gov_accounts.debt - settled.paid
        FROM settled
        WHERE community = p_community AND resident_id = p_resident
        RETURNING gov_accounts.balance
    ), e AS (
        INSERT INTO gov_entries (community, resident_id, kind, delta, balance_after, ref_type, ref_id, reason)
        SELECT p_community, p_resident, p_kind, p_points, a.balance, p_ref_type, p_ref_id, p_reason FROM a
    )
    SELECT a.balance, lot.id, settled.paid FROM a, lot, settled;
$fn$;
