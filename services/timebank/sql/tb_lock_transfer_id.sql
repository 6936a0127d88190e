-- A client-chosen transfer id applies at most once. The advisory lock serializes every request
-- carrying the id until the caller's transaction ends (every use case takes the same key), then
-- the earlier use of the id, if any, decides this request's outcome:
--   'new'       the id is unused: go on;
--   'conflict'  used with another body or in another community;
--   'stored'    refused before: `detail` holds the recorded problem, to be raised again;
--   'replayed'  posted before with the same body: answer that transfer again.
CREATE OR REPLACE FUNCTION tb_lock_transfer_id(p_id uuid, p_community text, p_fingerprint text)
RETURNS TABLE (outcome text, detail jsonb)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_seen record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_id::text, 7));
    SELECT x.community, x.fingerprint, x.problem_slug, x.detail_zh, x.detail_en INTO v_seen FROM (
        SELECT t.community, t.fingerprint, NULL::text AS problem_slug, NULL::text AS detail_zh, NULL::text AS detail_en
          FROM tb_transfers t WHERE t.id = p_id
        UNION ALL
        SELECT f.community, f.fingerprint, f.problem_slug, f.detail_zh, f.detail_en
          FROM tb_failed_transfers f WHERE f.id = p_id) x
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'new'::text, NULL::jsonb;
    ELSIF v_seen.community <> p_community OR v_seen.fingerprint <> p_fingerprint THEN
        RETURN QUERY SELECT 'conflict'::text, NULL::jsonb;
    ELSIF v_seen.problem_slug IS NOT NULL THEN
        RETURN QUERY SELECT 'stored'::text, jsonb_build_object('slug', v_seen.problem_slug,
            'detail_zh', v_seen.detail_zh, 'detail_en', v_seen.detail_en);
    ELSE
        RETURN QUERY SELECT 'replayed'::text, NULL::jsonb;
    END IF;
END
$fn$;
