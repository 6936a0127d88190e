"""Reconciling the ledger: the accounts' running totals against the transfers they came from.

The use cases keep the totals right inside one transaction each, and the database's constraints
hold each row; what no single row can show is that the rows still agree with each other. This
reads them all and says where they do not, for a community worker (`GET /ledger-audit`) or the
operator on call:

    python -m services.timebank.audit [--community lishui-baiyun]

It prints one JSON line per finding and exits 1 when there is one (0 when the ledger reconciles),
so a cron job or an alert can run it. It reads in one REPEATABLE READ snapshot, so transfers
written while it runs cannot show up as a disagreement.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import make_engine, make_sessionmaker, transaction
from services.timebank.settings import Settings

SHOWN_IDS = 50  # a finding names at most this many rows; `count` says how many there are


@dataclass(frozen=True)
class Finding:
    check: str
    community: str
    count: int
    ids: list[str] = field(default_factory=list)
    detail: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LedgerAudit:
    accounts: int
    transfers: int
    findings: list[Finding]

    @property
    def reconciles(self) -> bool:
        return not self.findings


# Each check is one query over the rows of one community (or all when :community is null) that
# returns (community, id) for each row in the wrong.
_IN_SCOPE = "(CAST(:community AS text) IS NULL OR {table}.community = CAST(:community AS text))"
_CHECKS: dict[str, str] = {
    # An account's totals equal the sums of its transfers: posted ones, and pending ones still open.
    "account_totals_disagree_with_transfers": f"""
        WITH moves AS (
          SELECT debit_account_id AS acc, amount_minutes AS d, 0 AS c, phase,
                 phase = 'pending' AND resolution IS NULL AS open FROM tb_transfers t
           WHERE {_IN_SCOPE.format(table="t")}
          UNION ALL
          SELECT credit_account_id, 0, amount_minutes, phase, phase = 'pending' AND resolution IS NULL
            FROM tb_transfers t WHERE {_IN_SCOPE.format(table="t")}),
        sums AS (
          SELECT acc, sum(d) FILTER (WHERE phase = 'posted') AS dp, sum(c) FILTER (WHERE phase = 'posted') AS cp,
                 sum(d) FILTER (WHERE open) AS dq, sum(c) FILTER (WHERE open) AS cq FROM moves GROUP BY acc)
        SELECT a.community, a.id FROM tb_accounts a LEFT JOIN sums s ON s.acc = a.id
         WHERE {_IN_SCOPE.format(table="a")}
           AND (a.debits_posted <> coalesce(s.dp, 0) OR a.credits_posted <> coalesce(s.cp, 0)
                OR a.debits_pending <> coalesce(s.dq, 0) OR a.credits_pending <> coalesce(s.cq, 0))
         ORDER BY a.community, a.id""",
    # A pending transfer is resolved exactly when one posting or void row points at it, and that
    # row's phase matches the resolution.
    "pending_resolution_mismatch": f"""
        SELECT p.community, p.id FROM tb_transfers p LEFT JOIN tb_transfers r ON r.pending_id = p.id
         WHERE {_IN_SCOPE.format(table="p")} AND p.phase = 'pending'
           AND ((p.resolution IS NULL) <> (r.id IS NULL)
                OR (p.resolution = 'posted' AND r.phase <> 'posted')
                OR (p.resolution IN ('voided', 'expired') AND r.phase <> 'voided'))
         ORDER BY p.community, p.id""",
    # Hours never move between communities: both accounts belong to the transfer's community.
    "transfer_crosses_communities": f"""
        SELECT t.community, t.id FROM tb_transfers t
          JOIN tb_accounts d ON d.id = t.debit_account_id JOIN tb_accounts c ON c.id = t.credit_account_id
         WHERE {_IN_SCOPE.format(table="t")} AND (d.community <> t.community OR c.community <> t.community)
         ORDER BY t.community, t.id""",
}
# Double entry over the whole community: what was debited was credited, posted and pending.
_TOTALS = text(f"""
    SELECT a.community, count(*) AS accounts,
           sum(a.debits_posted) AS debits_posted, sum(a.credits_posted) AS credits_posted,
           sum(a.debits_pending) AS debits_pending, sum(a.credits_pending) AS credits_pending
      FROM tb_accounts a WHERE {_IN_SCOPE.format(table="a")} GROUP BY a.community ORDER BY a.community""")
_TRANSFERS = text(f"SELECT count(*) FROM tb_transfers t WHERE {_IN_SCOPE.format(table='t')}")


async def audit_ledger(session: AsyncSession, community: str | None = None) -> LedgerAudit:
    """Every disagreement among the ledger's rows, for one community or all of them."""
    params = {"community": community}
    findings: list[Finding] = []
    async with transaction(session):
        # One snapshot for every query (when this begins the transaction; a caller's joins as it is).
        conn = await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        totals = (await conn.execute(_TOTALS, params)).all()
        transfers = int((await conn.execute(_TRANSFERS, params)).scalar_one())
        for row in totals:
            for phase in ("posted", "pending"):
                debits, credits = int(getattr(row, f"debits_{phase}")), int(getattr(row, f"credits_{phase}"))
                if debits != credits:
                    findings.append(
                        Finding(
                            f"{phase}_debits_differ_from_credits",
                            row.community,
                            1,
                            detail={"debits_minutes": debits, "credits_minutes": credits},
                        )
                    )
        for check, sql in _CHECKS.items():
            rows = (await conn.execute(text(sql), params)).all()
            by_community: dict[str, list[str]] = {}
            for place, row_id in rows:
                by_community.setdefault(place, []).append(str(row_id))
            findings += [Finding(check, place, len(ids), ids[:SHOWN_IDS]) for place, ids in by_community.items()]
    return LedgerAudit(accounts=sum(int(r.accounts) for r in totals), transfers=transfers, findings=findings)


async def _audit_from_settings(community: str | None) -> LedgerAudit:
    engine = make_engine(Settings().database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            return await audit_ledger(session, community)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.timebank.audit", description="Reconcile the time bank's account totals with its transfers."
    )
    parser.add_argument("--community", help="only this community (default: all)")
    args = parser.parse_args(argv)
    audit = asyncio.run(_audit_from_settings(args.community))
    for finding in audit.findings:
        sys.stdout.buffer.write(orjson.dumps(finding, option=orjson.OPT_APPEND_NEWLINE))
    summary: dict[str, Any] = {
        "reconciles": audit.reconciles,
        "accounts": audit.accounts,
        "transfers": audit.transfers,
        "findings": len(audit.findings),
    }
    sys.stdout.buffer.write(orjson.dumps(summary, option=orjson.OPT_APPEND_NEWLINE))
    return 0 if audit.reconciles else 1


if __name__ == "__main__":
    sys.exit(main())
