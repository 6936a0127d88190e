-- Minutes of a member's available balance above the storage cap, which move to the pool in the
-- same transaction. The twin of `domain.cap_overflow` (the ledger's legs); test_sql_functions.py
-- feeds both the same cases.
CREATE OR REPLACE FUNCTION tb_cap_overflow(p_available bigint, p_cap bigint)
RETURNS bigint
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT greatest(0, p_available - p_cap);
$fn$;
