-- The one place in SQL that knows the outbox's columns: database functions of every service
-- write their events through it, in the caller's transaction.
CREATE OR REPLACE FUNCTION kit_write_outbox(
    p_event_id text,
    p_topic text,
    p_key text,
    p_type text,
    p_source text,
    p_subject text,
    p_occurred_at timestamptz,
    p_data jsonb,
    p_traceparent text,
    p_tracestate text
) RETURNS void
LANGUAGE sql
AS $fn$
    INSERT INTO kit_outbox (event_id, topic, key, type, source, subject, occurred_at, data, traceparent, tracestate)
    VALUES (p_event_id, p_topic, p_key, p_type, p_source, p_subject, p_occurred_at, p_data, p_traceparent, p_tracestate);
$fn$;
