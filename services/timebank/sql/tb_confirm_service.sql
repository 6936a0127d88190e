-- Confirming a pending service transfer in one statement: the steps the other use cases take
-- through `transfer_ids` and `ledger`, in the same order and with the same problems, inside the
-- database, so a confirmation is one round trip:
--   1. the client id's lock and what an earlier use of the id means (`tb_lock_transfer_id`);
--   2. the pending transfer and its care request locked, with the community's storage cap;
--   3. who may resolve it (`tb_may_resolve`);
--   4. still pending and unresolved; the minutes to post (`tb_confirmed_minutes`);
--   5. both accounts locked in id order (the pool after them, only when the cap may overflow), the
--      pending amount released and the minutes posted; the credited member's minutes above the
--      cap (`tb_cap_overflow`) move to the pool as an overflow transfer;
--   6. the care request's next state from the transition table the caller passes (`p_care_next`,
--      built from `domain.CARE_TRANSITIONS`), then the writes: account totals, the posting (and
--      the overflow), the pending row resolved, the care request moved on, the payer's first
--      withdrawal noted, and the `timebank.service.confirmed.v1` event (`kit_write_outbox`).
-- A refusal returns ('refused', {slug, and the problem's fields}) before anything is written; the
-- caller maps it to its problem and records it. The accounts' CHECK constraints stand behind the
-- arithmetic.
CREATE OR REPLACE FUNCTION tb_confirm_service(
    p_id uuid, p_pending_id uuid, p_community text, p_actor text, p_is_worker boolean, p_is_steward boolean,
    p_minutes integer, p_fingerprint text, p_now timestamptz, p_pool uuid, p_overflow_id uuid, p_care_next jsonb,
    p_event_id text, p_event_type text, p_event_source text, p_event_topic text, p_confirmed_at text,
    p_traceparent text, p_tracestate text)
RETURNS TABLE (outcome text, detail jsonb, posting tb_transfers)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_seen record;
    v_pending record;
    v_account tb_accounts;
    v_debit tb_accounts;
    v_credit tb_accounts;
    v_pool tb_accounts;
    v_elder text;
    v_volunteer text;
    v_allowed boolean;
    v_minutes integer;
    v_cap bigint;
    v_available bigint;
    v_excess bigint := 0;
    v_debit_after bigint;
    v_credit_after bigint;
    v_care_next text;
    v_row tb_transfers;
BEGIN
    -- 1. one request per client id at a time; replay, conflict or recorded refusal
    SELECT l.outcome, l.detail INTO v_seen FROM tb_lock_transfer_id(p_id, p_community, p_fingerprint) l;
    IF v_seen.outcome = 'replayed' THEN
        RETURN QUERY SELECT 'replayed'::text, NULL::jsonb, t FROM tb_transfers t
                      WHERE t.id = p_id AND t.community = p_community;
        RETURN;
    ELSIF v_seen.outcome <> 'new' THEN
        RETURN QUERY SELECT v_seen.outcome, v_seen.detail, NULL::tb_transfers;
        RETURN;
    END IF;

    -- 2. the pending transfer and its care request, locked
    SELECT t.*, cr.elder_id, cr.volunteer_id, cr.status AS care_status, s.storage_cap_minutes INTO v_pending
      FROM tb_transfers t
      JOIN tb_community_settings s ON s.community = t.community
      JOIN tb_care_requests cr ON cr.id = t.care_request_id
     WHERE t.id = p_pending_id AND t.community = p_community
       FOR UPDATE OF t, cr;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/transfer-not-found'), NULL::tb_transfers;
        RETURN;
    END IF;
    v_cap := v_pending.storage_cap_minutes;

    -- 3. who may resolve it
    v_elder := coalesce(v_pending.elder_id, '');
    v_volunteer := coalesce(v_pending.volunteer_id, '');
    v_allowed := tb_may_resolve(p_community, p_actor, v_elder, v_volunteer, p_is_worker, p_is_steward);
    IF NOT v_allowed THEN
        RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', CASE WHEN p_actor = v_volunteer
            THEN 'timebank/not-allowed-to-resolve' ELSE 'timebank/transfer-not-found' END), NULL::tb_transfers;
        RETURN;
    END IF;

    -- 4. still open; no more minutes than were logged
    IF v_pending.phase <> 'pending' THEN
        RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/not-pending'), NULL::tb_transfers;
        RETURN;
    END IF;
    IF v_pending.resolution IS NOT NULL THEN
        RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/already-resolved',
            'resolution', v_pending.resolution), NULL::tb_transfers;
        RETURN;
    END IF;
    v_minutes := tb_confirmed_minutes(v_pending.amount_minutes, p_minutes);
    IF v_minutes IS NULL THEN
        RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/minutes-exceed-pending',
            'pending_minutes', v_pending.amount_minutes), NULL::tb_transfers;
        RETURN;
    END IF;

    -- 5. lock the accounts in id order, apply the posting, overflow above the cap to the pool
    FOR v_account IN SELECT * FROM tb_accounts
                      WHERE id IN (v_pending.debit_account_id, v_pending.credit_account_id) AND community = p_community
                      ORDER BY id FOR UPDATE LOOP
        IF v_account.id = v_pending.debit_account_id THEN v_debit := v_account; END IF;
        IF v_account.id = v_pending.credit_account_id THEN v_credit := v_account; END IF;
    END LOOP;
    IF v_debit.id IS NULL OR v_credit.id IS NULL THEN
        RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/account-not-found', 'account_ids',
            to_jsonb(array_remove(ARRAY[CASE WHEN v_debit.id IS NULL THEN v_pending.debit_account_id::text END,
                                        CASE WHEN v_credit.id IS NULL THEN v_pending.credit_account_id::text END],
                                  NULL))), NULL::tb_transfers;
        RETURN;
    END IF;
    IF v_debit.id <> p_pool AND v_credit.id <> p_pool AND v_credit.kind = 'member'
       AND tb_cap_overflow(v_credit.credits_posted - v_credit.debits_posted - v_credit.debits_pending + v_minutes, v_cap) > 0 THEN
        -- Locked after the others (out of id order) only when the cap may overflow, as the ledger
        -- does, so most confirmations do not queue on the pool's row.
        SELECT * INTO v_pool FROM tb_accounts WHERE id = p_pool AND community = p_community FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/account-not-found',
                'account_ids', jsonb_build_array(p_pool::text)), NULL::tb_transfers;
            RETURN;
        END IF;
    END IF;
    IF v_debit.id = v_credit.id THEN
        RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/same-account'), NULL::tb_transfers;
        RETURN;
    END IF;
    v_debit.debits_pending := v_debit.debits_pending - v_pending.amount_minutes;
    v_credit.credits_pending := v_credit.credits_pending - v_pending.amount_minutes;
    v_debit.debits_posted := v_debit.debits_posted + v_minutes;
    v_credit.credits_posted := v_credit.credits_posted + v_minutes;
    v_debit_after := v_debit.credits_posted - v_debit.debits_posted;
    v_credit_after := v_credit.credits_posted - v_credit.debits_posted;
    IF v_credit.kind = 'member' AND v_credit.id <> p_pool THEN
        v_available := v_credit.credits_posted - v_credit.debits_posted - v_credit.debits_pending;
        v_excess := tb_cap_overflow(v_available, v_cap);
        IF v_excess > 0 AND NOT tb_debit_allowed(v_credit.debits_must_not_exceed_credits, v_available, v_excess) THEN
            RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/insufficient-balance',
                'available_minutes', v_available, 'needed_minutes', v_excess), NULL::tb_transfers;
            RETURN;
        END IF;
        IF v_excess > 0 THEN
            v_credit.debits_posted := v_credit.debits_posted + v_excess;
            IF v_debit.id = p_pool THEN
                v_debit.credits_posted := v_debit.credits_posted + v_excess;
            ELSE
                v_pool.credits_posted := v_pool.credits_posted + v_excess;
            END IF;
        END IF;
    END IF;

    -- 6. the care request's next state, then the writes
    v_care_next := p_care_next ->> v_pending.care_status;
    IF v_care_next IS NULL THEN
        RETURN QUERY SELECT 'refused'::text, jsonb_build_object('slug', 'timebank/wrong-care-request-state',
            'care_status', v_pending.care_status), NULL::tb_transfers;
        RETURN;
    END IF;
    UPDATE tb_accounts SET debits_pending = v_debit.debits_pending, debits_posted = v_debit.debits_posted,
           credits_pending = v_debit.credits_pending, credits_posted = v_debit.credits_posted WHERE id = v_debit.id;
    UPDATE tb_accounts SET debits_pending = v_credit.debits_pending, debits_posted = v_credit.debits_posted,
           credits_pending = v_credit.credits_pending, credits_posted = v_credit.credits_posted WHERE id = v_credit.id;
    INSERT INTO tb_transfers (id, community, kind, phase, debit_account_id, credit_account_id, amount_minutes,
                              pending_id, care_request_id, service_type, fingerprint, created_by,
                              debit_balance_after, credit_balance_after, created_at)
    VALUES (p_id, p_community, v_pending.kind, 'posted', v_debit.id, v_credit.id, v_minutes,
            p_pending_id, v_pending.care_request_id, v_pending.service_type, p_fingerprint, p_actor,
            v_debit_after, v_credit_after, p_now)
    RETURNING * INTO v_row;
    IF v_excess > 0 THEN
        IF v_debit.id <> p_pool THEN
            UPDATE tb_accounts SET credits_posted = v_pool.credits_posted WHERE id = p_pool;
        END IF;
        INSERT INTO tb_transfers (id, community, kind, phase, debit_account_id, credit_account_id, amount_minutes,
                                  reason, fingerprint, created_by, debit_balance_after, credit_balance_after,
                                  created_at)
        VALUES (p_overflow_id, p_community, 'overflow', 'posted', v_credit.id, p_pool, v_excess,
                'storage cap ' || v_cap, 'overflow', p_actor, v_credit.credits_posted - v_credit.debits_posted,
                CASE WHEN v_debit.id = p_pool THEN v_debit.credits_posted - v_debit.debits_posted
                     ELSE v_pool.credits_posted - v_pool.debits_posted END,
                p_now);
    END IF;
    UPDATE tb_transfers SET resolution = 'posted', resolved_at = p_now
     WHERE id = p_pending_id AND resolution IS NULL;
    UPDATE tb_care_requests SET status = v_care_next WHERE id = v_pending.care_request_id;
    UPDATE tb_members SET first_withdrawal_at = p_now
     WHERE account_id = v_debit.id AND first_withdrawal_at IS NULL;
    PERFORM kit_write_outbox(p_event_id, p_event_topic, p_id::text, p_event_type, p_event_source, NULL, p_now,
            jsonb_build_object('transfer_id', p_id::text, 'community', p_community,
                               'volunteer_id', v_pending.volunteer_id, 'elder_id', v_pending.elder_id,
                               'minutes', v_minutes, 'service_type', coalesce(v_pending.service_type, 'other'),
                               'confirmed_at', p_confirmed_at),
            p_traceparent, p_tracestate);
    RETURN QUERY SELECT 'posted'::text, NULL::jsonb, v_row;
END
$fn$;
