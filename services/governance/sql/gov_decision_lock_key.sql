-- The key of a decision's advisory lock, one place for both its holders: each ballot holds it shared
-- (gov_cast_ballot), the closing job exclusively while it counts (closing.py). Immutable, so it is
-- inlined where it is called.
CREATE OR REPLACE FUNCTION gov_decision_lock_key(p_decision_id uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT hashtextextended('gov_decisions:' || p_decision_id::text, 0);
$fn$;
