-- Whether an account may be debited `p_amount`: one whose debits must not exceed its credits
-- needs that much available (pending debits counted). The twin of `domain.Balances.check_debit`
-- (the ledger's legs); test_sql_functions.py feeds both the same cases.
CREATE OR REPLACE FUNCTION tb_debit_allowed(p_limited boolean, p_available bigint, p_amount bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT NOT p_limited OR p_available >= p_amount;
$fn$;
