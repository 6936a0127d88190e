-- Draw points from the community's budget: true when it covers them, false (and nothing drawn) when
-- it does not, so the budget never goes below zero however many grants and awards race.
CREATE OR REPLACE FUNCTION gov_draw_budget(p_community text, p_points integer) RETURNS boolean
LANGUAGE sql AS $fn$
    WITH drawn AS (
        UPDATE gov_budgets SET remaining = remaining - p_points, granted = granted + p_points
        WHERE community = p_community AND remaining >= p_points
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM drawn);
$fn$;
