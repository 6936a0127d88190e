"""The ledger reconciliation on a large ledger, beside the bare scans it cannot do without.

No target in the issue; this tells a worker or an operator what `GET /ledger-audit` and
`python -m services.timebank.audit` cost. The ledger is the hours-expiry bench's (20,000 members,
500,000 transfers, written by SQL). The baseline is one bare query that groups every transfer by
debit and by credit account: the least any reconciliation of totals against transfers must read.
Run: `.venv/bin/python -m bench.timebank_audit`.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from sqlalchemy import text

from bench.harness import bench_stack, record
from bench.timebank_hours_expiry import COMMUNITY, prepare
from services.kit.db import make_engine, make_sessionmaker
from services.timebank.audit import audit_ledger

RUNS = 5
_BARE = text("""
    SELECT acc, sum(d), sum(c) FROM (
        SELECT debit_account_id AS acc, amount_minutes AS d, 0 AS c FROM tb_transfers
        UNION ALL SELECT credit_account_id, 0, amount_minutes FROM tb_transfers) m GROUP BY acc""")


async def main() -> None:
    async with bench_stack() as stack:
        url = await prepare(stack)
        engine = make_engine(url, pool_size=2)
        maker = make_sessionmaker(engine)
        audits, bares = [], []
        async with engine.connect() as conn:
            transfers = (await conn.execute(text("SELECT count(*) FROM tb_transfers"))).scalar_one()
        for _ in range(RUNS + 1):  # taking turns; the first of each is a warm-up
            async with maker() as session:
                t0 = time.perf_counter()
                result = await audit_ledger(session, COMMUNITY)
                audits.append((time.perf_counter() - t0) * 1000)
            assert result.reconciles, result.findings
            async with engine.connect() as conn:
                t0 = time.perf_counter()
                await conn.execute(_BARE)
                bares.append((time.perf_counter() - t0) * 1000)
        record(
            "timebank_ledger_audit",
            statistics.median(audits[1:]),
            "ms",
            "one bare group-by of every transfer by account",
            statistics.median(bares[1:]),
            higher_is_better=False,
            extra={
                "accounts": result.accounts,
                "transfers": transfers,
                "audit runs ms": [round(a) for a in audits[1:]],
                "bare runs ms": [round(b) for b in bares[1:]],
            },
        )
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
