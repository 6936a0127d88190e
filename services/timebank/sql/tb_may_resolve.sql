-- Who may confirm or dispute a service: the elder, a delegate (a steward, or a verified relative
-- of the elder) or a community worker; never the volunteer who served, whatever else they are.
CREATE OR REPLACE FUNCTION tb_may_resolve(p_community text, p_actor text, p_elder text, p_volunteer text,
                                          p_is_worker boolean, p_is_steward boolean)
RETURNS boolean
LANGUAGE sql STABLE AS $fn$
    SELECT CASE
        WHEN p_actor = p_volunteer THEN false
        WHEN p_actor = p_elder OR p_is_worker OR p_is_steward THEN true
        ELSE EXISTS (SELECT 1 FROM tb_relatives r
                      WHERE r.community = p_community AND r.member_id = p_actor AND r.relative_id = p_elder)
    END;
$fn$;
