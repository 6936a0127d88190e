-- The minutes a confirmation posts: those logged, or fewer if the elder says so, never more
-- (NULL: refused, the asked minutes exceed the pending ones).
CREATE OR REPLACE FUNCTION tb_confirmed_minutes(p_pending integer, p_asked integer)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE WHEN p_asked IS NULL THEN p_pending WHEN p_asked <= p_pending THEN p_asked END;
$fn$;
