-- A device's batch of access events, in one statement: the device is checked, each event is
-- inserted once (a retry's rows hit the unique (device_id, device_event_id) and are skipped), the
-- new rows are published as one event (no credential id, plate or household in it), and the
-- households that showed signs of life move their inactivity watches on and clear those watches'
-- open alarms (each clearing published). Returns the number of new rows, or NULL when the device
-- is not registered in the community.
CREATE OR REPLACE FUNCTION security_ingest(
    p_community text,
    p_device_id text,
    p_event_ids text[],
    p_directions text[],
    p_kinds text[],
    p_credentials text[],
    p_pass_ids text[],
    p_plates text[],
    p_ats timestamptz[],
    p_now timestamptz,
    p_topic text,
    p_source text,
    p_traceparent text,
    p_tracestate text
) RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_building text;
    v_household text;
    v_stored integer;
    v_in integer;
    v_out integer;
    v_activity integer;
    v_entries jsonb;
BEGIN
    SELECT building_id, household_id INTO v_building, v_household
      FROM devices WHERE id = p_device_id AND community = p_community;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    WITH new AS (
        -- The household: a card's or face's enrolment, the inviting household for a pass, the
        -- device's own for an in-home sensor.
        INSERT INTO access_events (community, device_id, device_event_id, building_id, direction, credential_kind,
                                   credential_id, pass_id, plate, household_id, occurred_at)
        SELECT p_community, p_device_id, b.event_id, v_building, b.direction, b.credential_kind, b.credential_id,
               b.pass_id, b.plate, COALESCE(c.household_id, p.household_id, v_household), b.occurred_at
          FROM unnest(p_event_ids, p_directions, p_kinds, p_credentials, p_pass_ids, p_plates, p_ats) WITH ORDINALITY
               AS b(event_id, direction, credential_kind, credential_id, pass_id, plate, occurred_at, n)
          LEFT JOIN credentials c ON c.community = p_community AND c.credential_id = b.credential_id
          LEFT JOIN passes p ON p.community = p_community AND p.id = b.pass_id
         ORDER BY b.n
        ON CONFLICT (device_id, device_event_id) DO NOTHING
        RETURNING direction, credential_kind, household_id, occurred_at
    ), life AS (
        -- A sign of life is the household's own card or face, or its in-home sensor; a visitor's
        -- pass is not.
        SELECT household_id, max(occurred_at) AS at FROM new
         WHERE household_id IS NOT NULL AND (credential_kind IN ('card', 'face') OR direction = 'activity')
         GROUP BY household_id
    ), moved AS (
        UPDATE watches w SET last_activity_at = life.at FROM life
         WHERE w.community = p_community AND w.household_id = life.household_id AND life.at > w.last_activity_at
        RETURNING w.id
    ), cleared AS (
        UPDATE alarms a SET cleared_at = p_now FROM moved
         WHERE a.community = p_community AND a.watch_id = moved.id AND a.cleared_at IS NULL
        RETURNING a.id, a.kind, a.building_id
    ), told AS (
        SELECT kit_write_outbox(
                   gen_random_uuid()::text, p_topic, cleared.id, 'security.alarm.cleared.v1', p_source, NULL, p_now,
                   jsonb_build_object('alarm_id', cleared.id, 'community', p_community, 'kind', cleared.kind,
                                      'building_id', cleared.building_id, 'cleared_at', p_now),
                   p_traceparent, p_tracestate)
          FROM cleared
    )
    SELECT count(*),
           count(*) FILTER (WHERE new.direction = 'in'),
           count(*) FILTER (WHERE new.direction = 'out'),
           count(*) FILTER (WHERE new.direction = 'activity'),
           jsonb_agg(jsonb_build_object('direction', new.direction, 'credential_kind', new.credential_kind,
                                        'occurred_at', new.occurred_at))
      INTO v_stored, v_in, v_out, v_activity, v_entries
      FROM new
     WHERE (SELECT count(*) FROM told) >= 0;
    IF v_stored > 0 THEN
        PERFORM kit_write_outbox(
            gen_random_uuid()::text, p_topic, p_device_id, 'security.access.recorded.v1', p_source, NULL, p_now,
            jsonb_build_object('community', p_community, 'device_id', p_device_id, 'building_id', v_building,
                               'entries', v_entries, 'in_count', v_in, 'out_count', v_out,
                               'activity_count', v_activity),
            p_traceparent, p_tracestate);
    END IF;
    RETURN v_stored;
END;
$fn$;
