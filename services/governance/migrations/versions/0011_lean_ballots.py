"""A ballot that costs the database less: the one-ballot key as the ballot's primary key, no other index,
no foreign key, and the voter's owner key kept on the frozen roll of voters.

- `gov_ballots`: the key (decision_id, voter_key) is the table's primary key, the one-ballot rule.
  The `id` index goes (nothing reads a ballot by id alone) and so does the UNIQUE on `receipt` (a
  SHA-256 over a random 128-bit nonce: unique by construction). The foreign key to `gov_decisions`
  goes: a ballot's voter key is read from the decision's frozen roll, whose rows hold that foreign
  key, and decisions are never deleted. Each index and the key's check cost every ballot's insert.
- `gov_decision_voters.owner_key`: the voter's unit's owner key, copied when the roll is frozen, so
  an app ballot finds its voter key in one index lookup instead of two.
- `gov_cast_ballot` (sql/gov_cast_ballot.sql) holds the decision by a shared advisory lock instead of
  FOR KEY SHARE: concurrent row lockers of one decision make the database write a new multixact and
  a WAL record on every ballot, the advisory lock stays in memory. The closing job takes the same
  lock exclusively (`closing.py`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.kit.sqlfiles import create_function

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("fk_gov_ballots_decision_id_gov_decisions", "gov_ballots", type_="foreignkey")
    op.drop_constraint("uq_gov_ballots_receipt", "gov_ballots", type_="unique")
    op.drop_constraint("pk_gov_ballots", "gov_ballots", type_="primary")
    op.drop_constraint("uq_gov_ballots_one_per_voter", "gov_ballots", type_="unique")
    op.create_primary_key("pk_gov_ballots", "gov_ballots", ["decision_id", "voter_key"])
    op.add_column("gov_decision_voters", sa.Column("owner_key", sa.Text(), nullable=True))
    op.execute(
        "UPDATE gov_decision_voters AS v SET owner_key = u.owner_key FROM gov_decision_units AS u"
        " WHERE u.decision_id = v.decision_id AND u.household_id = v.household_id"
    )
    op.alter_column("gov_decision_voters", "owner_key", nullable=False)
    create_function("governance", "gov_decision_lock_key")
    create_function("governance", "gov_cast_ballot")


def downgrade() -> None:
    op.drop_column("gov_decision_voters", "owner_key")
    op.drop_constraint("pk_gov_ballots", "gov_ballots", type_="primary")
    op.create_primary_key("pk_gov_ballots", "gov_ballots", ["id"])
    op.create_unique_constraint("uq_gov_ballots_one_per_voter", "gov_ballots", ["decision_id", "voter_key"])
    op.create_unique_constraint("uq_gov_ballots_receipt", "gov_ballots", ["receipt"])
    op.create_foreign_key("fk_gov_ballots_decision_id_gov_decisions", "gov_ballots", "gov_decisions", ["decision_id"], ["id"])
    op.execute(_CAST_BALLOT_BEFORE)
    op.execute("DROP FUNCTION gov_decision_lock_key(uuid)")


# gov_cast_ballot as it was before this revision (sql/gov_cast_ballot.sql then), for the downgrade.
_CAST_BALLOT_BEFORE = """
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
    SELECT d.kind, d.status, d.opens_at, d.closes_at, d.options INTO v_decision
      FROM gov_decisions AS d WHERE d.id = p_decision_id AND d.community = p_community FOR KEY SHARE;
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
        SELECT u.owner_key, u.household_id INTO v_key, v_household
          FROM gov_decision_voters AS v
          JOIN gov_decision_units AS u ON u.decision_id = v.decision_id AND u.household_id = v.household_id
         WHERE v.decision_id = p_decision_id AND v.resident_id = v_resident;
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
    ON CONFLICT ON CONSTRAINT uq_gov_ballots_one_per_voter DO NOTHING
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
"""
