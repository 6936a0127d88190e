"""Every grant by a rule says so: `gov_grant` writes `governance.points.granted.v1`.

The city's daily statistics count points granted as well as redeemed, and a grant was visible only
inside governance. The function (migration 0002) now also writes the event's outbox row when it
grants, in the same statement, so the earning consumer pays no extra round trip for it. Awards
publish the same event from the use case. Steps 1-4 are unchanged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SIGNATURE = "gov_grant(text, text, uuid, text, text, integer, text, integer, date, timestamptz, text)"
NEW_SIGNATURE = (
    "gov_grant(text, text, uuid, text, text, integer, text, integer, date, timestamptz, text, text, text, "
    "text, text, text, text, text, text)"
)

GRANT = r"""
CREATE FUNCTION gov_grant(
    p_community text, p_resident text, p_rule_id uuid, p_source_event_id text, p_source_ref text,
    p_points integer, p_skip text, p_cap integer, p_period_start date, p_expires_at timestamptz, p_reason text,
    p_trigger text, p_granted_at text, p_event_id text, p_event_topic text, p_event_type text, p_event_source text,
    p_traceparent text, p_tracestate text,
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
    INSERT INTO kit_outbox (event_id, topic, key, type, source, subject, occurred_at, data, traceparent, tracestate)
    VALUES (p_event_id, p_event_topic, grant_id::text, p_event_type, p_event_source, NULL, now(),
            jsonb_build_object('grant_id', grant_id::text, 'community', p_community, 'resident_id', p_resident,
                               'points', p_points, 'source', 'rule', 'trigger', p_trigger,
                               'rule_id', p_rule_id::text, 'granted_at', p_granted_at),
            p_traceparent, p_tracestate);
    outcome := 'granted';
END
$fn$
"""


def upgrade() -> None:
    op.execute(f"DROP FUNCTION {OLD_SIGNATURE}")
    op.execute(GRANT)


def downgrade() -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("grant_0002", Path(__file__).with_name("0002_grant_function.py"))
    assert spec is not None and spec.loader is not None
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(f"DROP FUNCTION {NEW_SIGNATURE}")
    op.execute(previous.GRANT)
