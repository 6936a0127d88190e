-- A resident's account row, created on first use and locked until the caller's transaction ends.
-- Every change to a resident's points takes this lock first (after any grant, cap counter, budget or
-- redemption row), so one resident's lots change one transaction at a time and a balance is never
-- spent twice. The no-op update is what takes the row lock on an existing row.
CREATE OR REPLACE FUNCTION gov_hold_account(
    p_community text, p_resident text, OUT balance bigint, OUT debt bigint, OUT reserved bigint)
LANGUAGE sql AS $fn$
    INSERT INTO gov_accounts AS a (community, resident_id) VALUES (p_community, p_resident)
    ON CONFLICT (community, resident_id) DO UPDATE SET debt = a.debt
    RETURNING a.balance, a.debt, a.reserved;
$fn$;
