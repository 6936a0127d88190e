-- Granting a rule's points in one call: the earning consumer applies thousands of events a minute,
-- one grant each, so every step runs here, in the same order and under the same locks as a use case
-- would take them:
--   1. the grant row for (community, source event, rule), ON CONFLICT DO NOTHING: an existing row
--      means this source was granted (or skipped) before and nothing else happens ('duplicate'); a
--      skip the caller already decided (rule off, outside its validity, zero points) is recorded;
--   2. the cap counter's conditional upsert, when the rule has a cap ('capped' when reached);
--   3. the community budget (gov_draw_budget; 'budget-exhausted' when it does not cover the grant);
--   4. the resident's account row, locked (gov_hold_account), and the points credited as a lot
--      (gov_credit_lot: a debt is paid first; the balance, the debt and the statement line);
--   5. the governance.points.granted.v1 event, through the kit's outbox writer.
-- Each statement of a PL/pgSQL function sees what committed before it started, so the debt read
-- after taking the account lock is current. The caller decides the skip, the cap period and the
-- expiry from the rule (pure domain functions) and turns a refusal into a problem on the HTTP path.
CREATE OR REPLACE FUNCTION gov_grant(
    p_community text, p_resident text, p_rule_id uuid, p_source_event_id text, p_source_ref text,
    p_points integer, p_skip text, p_cap integer, p_period_start date, p_expires_at timestamptz, p_reason text,
    p_trigger text, p_granted_at text, p_event_id text, p_event_topic text, p_event_type text, p_event_source text,
    p_traceparent text, p_tracestate text,
    OUT grant_id uuid, OUT outcome text)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_debt bigint;
BEGIN
    INSERT INTO gov_grants (community, resident_id, rule_id, source_event_id, source_ref, points, status, skip_reason)
    VALUES (p_community, p_resident, p_rule_id, p_source_event_id, p_source_ref,
            CASE WHEN p_skip IS NULL THEN p_points ELSE 0 END,
            CASE WHEN p_skip IS NULL THEN 'granted' ELSE 'skipped' END, p_skip)
    ON CONFLICT DO NOTHING
    RETURNING id INTO grant_id;
    IF grant_id IS NULL THEN
        outcome := 'duplicate';
        RETURN;
    END IF;
    IF p_skip IS NOT NULL THEN
        outcome := p_skip;
        RETURN;
    END IF;

    IF p_cap IS NOT NULL THEN
        INSERT INTO gov_cap_counters AS c (community, resident_id, rule_id, period_start, count)
        VALUES (p_community, p_resident, p_rule_id, p_period_start, 1)
        ON CONFLICT (community, resident_id, rule_id, period_start) DO UPDATE SET count = c.count + 1
        WHERE c.count < p_cap;
        IF NOT FOUND THEN
            UPDATE gov_grants SET status = 'skipped', skip_reason = 'capped', points = 0 WHERE id = grant_id;
            outcome := 'capped';
            RETURN;
        END IF;
    END IF;

    IF NOT gov_draw_budget(p_community, p_points) THEN
        UPDATE gov_grants SET status = 'skipped', skip_reason = 'budget-exhausted', points = 0 WHERE id = grant_id;
        outcome := 'budget-exhausted';
        RETURN;
    END IF;

    SELECT h.debt INTO v_debt FROM gov_hold_account(p_community, p_resident) AS h;
    PERFORM gov_credit_lot(p_community, p_resident, v_debt, p_points, p_expires_at, 'grant', 'grant', grant_id::text,
                           p_reason, grant_id);
    PERFORM kit_write_outbox(
        p_event_id, p_event_topic, grant_id::text, p_event_type, p_event_source, NULL, now(),
        jsonb_build_object('grant_id', grant_id::text, 'community', p_community, 'resident_id', p_resident,
                           'points', p_points, 'source', 'rule', 'trigger', p_trigger,
                           'rule_id', p_rule_id::text, 'granted_at', p_granted_at),
        p_traceparent, p_tracestate);
    outcome := 'granted';
END
$fn$;
