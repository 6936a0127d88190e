"""Operator commands, for the person on call at 3 a.m.

    python -m services.kit.operator outbox-status <service>
    python -m services.kit.operator republish <service> --since 2026-11-01T00:00:00+08:00
    python -m services.kit.operator replay-dead-letters <service> <consumer-group>

`republish` marks every outbox event since a time unsent, so the running relay sends it again
(consumers dedupe by event id): it refills a broker that lost its data. `replay-dead-letters`
sends a group's dead letters back to the group once the cause is fixed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from services.kit.db import make_engine
from services.kit.inbox import replay_dead_letters
from services.kit.outbox import republish_since
from services.kit.settings import ServiceSettings
from services.kit.tables import outbox


def load_settings(service: str) -> ServiceSettings:
    module = importlib.import_module(f"services.{service}.settings")
    settings: ServiceSettings = module.Settings()
    return settings


def aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("give the time with its offset, e.g. 2026-11-01T00:00:00+08:00")
    return parsed


async def outbox_status(service: str) -> dict[str, Any]:
    engine = make_engine(load_settings(service).database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            unsent, oldest = (
                await conn.execute(select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None)))
            ).one()
            last_error = (
                await conn.execute(
                    select(outbox.c.last_error).where(outbox.c.last_error.is_not(None)).order_by(outbox.c.id.desc()).limit(1)
                )
            ).scalar_one_or_none()
            total = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    finally:
        await engine.dispose()
    return {
        "service": service,
        "unsent": unsent,
        "oldest_unsent": oldest.isoformat() if oldest else None,
        "kept_rows": total,
        "last_error": last_error,
    }


async def republish(service: str, since: datetime) -> int:
    engine = make_engine(load_settings(service).database_url, pool_size=1)
    try:
        return await republish_since(engine, since)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.kit.operator")
    sub = parser.add_subparsers(dest="command", required=True)
    status_p = sub.add_parser("outbox-status", help="unsent events, the oldest one, the last broker error")
    status_p.add_argument("service")
    rep_p = sub.add_parser("republish", help="send every event since a time again")
    rep_p.add_argument("service")
    rep_p.add_argument("--since", type=aware, required=True)
    dlq_p = sub.add_parser("replay-dead-letters", help="send a consumer group's dead letters back to it")
    dlq_p.add_argument("service")
    dlq_p.add_argument("group")
    args = parser.parse_args(argv)
    if args.command == "outbox-status":
        for key, value in asyncio.run(outbox_status(args.service)).items():
            print(f"{key}: {value}")
    elif args.command == "republish":
        count = asyncio.run(republish(args.service, args.since))
        print(f"{count} events marked for re-publishing; the relay sends them shortly")
    else:
        count = asyncio.run(replay_dead_letters(load_settings(args.service), args.group))
        print(f"{count} dead letters sent back to {args.group}")


if __name__ == "__main__":
    main()
