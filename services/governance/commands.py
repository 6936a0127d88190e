"""Operator commands: `python -m services.governance.commands expire-lots | release-overdue`."""

from __future__ import annotations

import asyncio
import sys

from services.governance import accounts, redemptions
from services.governance.settings import Settings
from services.kit.db import make_engine, make_sessionmaker


async def run(command: str) -> int:
    settings = Settings()
    engine = make_engine(settings.database_url, pool_size=2)
    maker = make_sessionmaker(engine)
    total = 0
    try:
        while True:
            async with maker() as session:
                if command == "expire-lots":
                    done = await accounts.expire_due_lots(session)
                else:
                    done = await redemptions.release_overdue(session)
            total += done
            if done == 0:
                break
    finally:
        await engine.dispose()
    return total


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in ("expire-lots", "release-overdue"):
        print("usage: python -m services.governance.commands expire-lots|release-overdue", file=sys.stderr)
        raise SystemExit(2)
    total = asyncio.run(run(argv[0]))
    unit = "points expired" if argv[0] == "expire-lots" else "redemptions released"
    print(f"governance: {total} {unit}")


if __name__ == "__main__":
    main(sys.argv[1:])
