-- Casting a ballot in one statement. A burst of ballots (10,000 households at once) costs what the
-- round trips and the database's work per ballot cost, so every check and write runs here, in the
-- order the problems are ranked:
--   1. the decision's advisory lock, shared (gov_decision_lock_key): the closing job takes it
--      exclusively before it counts, so it waits for the ballots in flight, and a ballot that waited
--      for the close reads the decision afterwards and sees it closed: a ballot is counted or refused,
--      never lost. A row lock (FOR KEY SHARE) did the same, but concurrent lockers of one row make the
--      database write a multixact and a WAL record per ballot; an advisory lock stays in memory. Then
--      the decision of this community ('not-found');
--   2. open, and now within [opens_at, closes_at) ('not-open'); the option is one of its options
--      ('unknown-option');
--   3. who the ballot is for: a paper ballot names the household; an app ballot is the caster's own,
--      or, with p_on_behalf_of, an owner's for whom the caster is a verified proxy a worker recorded
--      (a written authorisation, or a registered relative of an elder; 'not-a-proxy'), the basis
--      kept on the ballot; that person on the frozen roll of voters (which holds their voter key and
--      household, one index lookup) gives the voter key ('not-on-roll');
--   4. the ballot under the one-ballot key, the table's primary key (decision, voter key), ON CONFLICT
--      DO NOTHING: the key is the rule. A conflict returns the existing ballot when it is the same
--      option by the same caster (a retry, 'same'), else 'already-cast'; nothing is written either way;
--   5. the governance.ballot.cast.v1 event (never the option), through the kit's outbox writer.
-- Each statement of a PL/pgSQL function sees what committed before it started, so the decision read
-- after the lock is as the close left it, and the existing ballot read after a conflict is the one
-- that won. tests/governance/test_decisions.py covers each outcome, test_closing.py the close's race.
CREATE OR REPLACE FUNCTION gov_cast_ballot(
    p_community text, p_decision_id uuid, p_voter text, p_on_behalf_of text, p_household text, p_option text,
    p_channel text, p_cast_by text, p_id uuid, p_receipt text, p_now timestamptz, p_cast_at_json text,
    p_event_id text, p_event_topic text, p_event_type text, p_event_source text,
    p_traceparent text, p_tracestate text)
RETURNS TABLE (outcome text, id uuid, voter_key text, household_id text, option text, channel text, cast_by text,
               on_behalf_of text, proxy_basis text, receipt text, cast_at timestamptz)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_decision record;
    v_resident text;
    v_household text;
    v_key text;
    v_basis text;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(gov_decision_lock_key(p_decision_id));
    SELECT d.kind, d.status, d.opens_at, d.closes_at, d.options INTO v_decision
      FROM gov_decisions AS d WHERE d.id = p_decision_id AND d.community = p_community;
    IF NOT FOUND THEN
        outcome := 'not-found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_decision.status <> 'open' OR NOT (v_decision.opens_at <= p_now AND p_now < v_decision.closes_at) THEN
        outcome := 'not-open';
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT p_option = ANY (v_decision.options) THEN
        outcome := 'unknown-option';
        RETURN NEXT;
        RETURN;
    END IF;

    IF p_household IS NOT NULL THEN
        SELECT u.owner_key, u.household_id INTO v_key, v_household
          FROM gov_decision_units AS u WHERE u.decision_id = p_decision_id AND u.household_id = p_household;
    ELSE
        v_resident := coalesce(p_on_behalf_of, p_voter);
        IF v_resident <> p_voter THEN
            SELECT p.basis INTO v_basis FROM gov_proxy_authorisations AS p
             WHERE p.community = p_community AND p.owner_id = v_resident AND p.proxy_id = p_voter;
            IF v_basis IS NULL THEN
                outcome := 'not-a-proxy';
                RETURN NEXT;
                RETURN;
            END IF;
        END IF;
        SELECT v.owner_key, v.household_id INTO v_key, v_household
          FROM gov_decision_voters AS v WHERE v.decision_id = p_decision_id AND v.resident_id = v_resident;
    END IF;
    IF v_key IS NULL THEN
        outcome := 'not-on-roll';
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO gov_ballots AS b (id, decision_id, community, voter_key, household_id, option, channel, cast_by,
                                  on_behalf_of, proxy_basis, receipt, cast_at)
    VALUES (p_id, p_decision_id, p_community, v_key, v_household, p_option, p_channel, p_cast_by,
            CASE WHEN p_channel = 'proxy' THEN v_resident END, v_basis, p_receipt, p_now)
    ON CONFLICT ON CONSTRAINT pk_gov_ballots DO NOTHING
    RETURNING b.id, b.voter_key, b.household_id, b.option, b.channel, b.cast_by, b.on_behalf_of, b.proxy_basis,
              b.receipt, b.cast_at
         INTO id, voter_key, household_id, option, channel, cast_by, on_behalf_of, proxy_basis, receipt, cast_at;
    IF NOT FOUND THEN
        SELECT b.id, b.voter_key, b.household_id, b.option, b.channel, b.cast_by, b.on_behalf_of, b.proxy_basis,
               b.receipt, b.cast_at
          INTO id, voter_key, household_id, option, channel, cast_by, on_behalf_of, proxy_basis, receipt, cast_at
          FROM gov_ballots AS b WHERE b.decision_id = p_decision_id AND b.voter_key = v_key;
        outcome := CASE WHEN option = p_option AND cast_by = p_cast_by THEN 'same' ELSE 'already-cast' END;
        RETURN NEXT;
        RETURN;
    END IF;

    PERFORM kit_write_outbox(p_event_id, p_event_topic, p_decision_id::text, p_event_type, p_event_source, NULL, p_now,
        jsonb_build_object('ballot_id', p_id::text, 'decision_id', p_decision_id::text, 'community', p_community,
                           'kind', v_decision.kind, 'channel', p_channel,
                           'resident_id', CASE WHEN p_channel = 'paper' THEN NULL ELSE v_resident END,
                           'cast_at', p_cast_at_json),
        p_traceparent, p_tracestate);
    outcome := 'cast';
    RETURN NEXT;
END
$fn$;
