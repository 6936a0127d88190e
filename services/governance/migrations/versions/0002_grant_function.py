"""Granting a rule's points in one call: `gov_grant`.

A grant used to take five round trips after the rule lookup (grant row, cap counter, budget,
account lock, then lot + grant's lot + balance + statement line); the earning consumer applies
thousands of events a minute, one grant each, so the round trips were most of its time. This
function does the same steps, in the same order and under the same locks, inside the database:

1. the grant row for (community, source event, rule), `ON CONFLICT DO NOTHING`: an existing row
   means this source was granted (or skipped) before, and nothing else happens (`duplicate`);
   a skip already decided by the caller (rule switched off, outside its validity, zero points) is
   recorded on the row and returned;
2. the cap counter's conditional upsert, when the rule has a cap: no row back means the cap is
   reached, the grant is marked skipped (`capped`);
3. the community budget's conditional UPDATE (never below zero): no row means it is exhausted, the
   grant is marked skipped (`budget-exhausted`);
4. the resident's account row, created on first use, locked; a debt left by a clawback is paid
   first (domain.settle_debt), the rest kept as a new lot; the grant points at its lot; the
   balance and debt move; the statement line records the balance after.

Each statement inside a PL/pgSQL function sees what committed before it started, so reading the
debt after taking the account lock is as safe here as in separate statements. The caller decides
the skip, the cap period and the expiry from the rule (pure domain functions) and raises a problem
for a refusal on the HTTP path (rolling everything back) as before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRANT = r"""
CREATE FUNCTION gov_grant(
    p_community text, p_resident text, p_rule_id uuid, p_source_event_id text, p_source_ref text,
    p_points integer, p_skip text, p_cap integer, p_period_start date, p_expires_at timestamptz, p_reason text,
    OUT grant_id uuid, OUT outcome text)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_debt bigint;
    v_paid integer;
    v_lot bigint;
    v_balance bigint;
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

    UPDATE gov_budgets SET remaining = remaining - p_points, granted = granted + p_points
    WHERE community = p_community AND remaining >= p_points;
    IF NOT FOUND THEN
        UPDATE gov_grants SET status = 'skipped', skip_reason = 'budget-exhausted', points = 0 WHERE id = grant_id;
        outcome := 'budget-exhausted';
        RETURN;
    END IF;

    INSERT INTO gov_accounts AS a (community, resident_id) VALUES (p_community, p_resident)
    ON CONFLICT (community, resident_id) DO UPDATE SET debt = a.debt
    RETURNING a.debt INTO v_debt;
    v_paid := least(v_debt, p_points);
    INSERT INTO gov_lots (community, resident_id, points, remaining, expires_at)
    VALUES (p_community, p_resident, p_points, p_points - v_paid, p_expires_at)
    RETURNING id INTO v_lot;
    UPDATE gov_grants SET lot_id = v_lot WHERE id = grant_id;
    UPDATE gov_accounts SET balance = balance + p_points, debt = debt - v_paid
    WHERE community = p_community AND resident_id = p_resident
    RETURNING balance INTO v_balance;
    INSERT INTO gov_entries (community, resident_id, kind, delta, balance_after, ref_type, ref_id, reason)
    VALUES (p_community, p_resident, 'grant', p_points, v_balance, 'grant', grant_id::text, p_reason);
    outcome := 'granted';
END
$fn$
"""


def upgrade() -> None:
    op.execute(GRANT)


def downgrade() -> None:
    op.execute("DROP FUNCTION gov_grant(text, text, uuid, text, text, integer, text, integer, date, timestamptz, text)")
