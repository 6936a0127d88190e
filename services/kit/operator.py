"""Operator commands, for the person on call at 3 a.m.

    python -m services.kit.operator outbox-status <service>
    python -m services.kit.operator republish <service> --since 2026-11-01T00:00:00+08:00
    python -m services.kit.operator replay-dead-letters <service> <consumer-group>
    python -m services.kit.operator topics [--check]

`outbox-status` shows what waits to be sent, what is set aside (events the broker can never
accept), each partition's last acknowledged offset and the broker losses the relay found and
repaired by itself. `republish` marks every outbox event since a time unsent, so the running relay
sends it again (consumers dedupe by event id): the relay re-sends what a broker lost on its own,
so this is for a broker that lost data the relay could not see (another writer, a pruned row). `replay-dead-letters`
sends a group's dead letters back to the group once the cause is fixed. `topics` creates the
Kafka topics of `deploy/kafka/topics.toml` that are missing (run it before the first release and
after adding a topic); `topics --check` only reports how the cluster differs, and fails if it does.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import make_engine
from services.kit.held_keys import held_count
from services.kit.kafka import make_admin
from services.kit.outbox import republish_since
from services.kit.redelivery import replay_dead_letters
from services.kit.settings import ServiceSettings
from services.kit.tables import outbox, outbox_partitions
from services.kit.topics import DECLARED, create_missing_topics, declared_topics, topic_differences


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
        return await outbox_report(engine, service)
    finally:
        await engine.dispose()


async def outbox_report(engine: AsyncEngine, service: str) -> dict[str, Any]:
    """What `outbox-status` prints, read from the service's database."""
    async with engine.connect() as conn:
        waiting = outbox.c.sent_at.is_(None) & outbox.c.set_aside_at.is_(None)
        unsent, oldest = (await conn.execute(select(func.count(), func.min(outbox.c.created_at)).where(waiting))).one()
        last_error = (
            await conn.execute(
                select(outbox.c.last_error).where(outbox.c.last_error.is_not(None)).order_by(outbox.c.id.desc()).limit(1)
            )
        ).scalar_one_or_none()
        total = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        set_aside = (await conn.execute(select(outbox.c.id, outbox.c.last_error).where(outbox.c.set_aside_at.is_not(None)))).all()
        held = await held_count(conn) if set_aside else 0
        partitions = (await conn.execute(select(outbox_partitions).order_by("topic", "partition"))).all()
    losses = [p for p in partitions if p.losses]
    last_loss = max(losses, key=lambda p: p.last_loss_at, default=None)
    return {
        "service": service,
        "unsent": unsent,
        "oldest_unsent": oldest.isoformat() if oldest else None,
        "kept_rows": total,
        "last_error": last_error,
        # Events the broker can never accept: they wait for the operator (fix, then re-send or delete).
        "set_aside": {row.id: row.last_error for row in set_aside},
        # Of the unsent, those waiting behind a set-aside event of their key (they go out after it).
        "held_behind_set_aside": held,
        "acknowledged_offsets": {f"{p.topic}[{p.partition}]": p.acked_offset for p in partitions},
        "broker_losses": sum(p.losses for p in partitions),
        "last_broker_loss": (
            f"{last_loss.last_loss_at.isoformat()} {last_loss.topic}[{last_loss.partition}]: {last_loss.last_loss}"
            if last_loss
            else None
        ),
    }


async def republish(service: str, since: datetime) -> int:
    engine = make_engine(load_settings(service).database_url, pool_size=1)
    try:
        return await republish_since(engine, since)
    finally:
        await engine.dispose()


async def topics(settings: ServiceSettings, *, check: bool, declaration: Path = DECLARED) -> tuple[list[str], list[str]]:
    """(topics created, differences left): `check` creates nothing."""
    specs = declared_topics(settings, declaration)
    admin = make_admin(settings)
    await admin.start()
    try:
        created = [] if check else await create_missing_topics(admin, specs)
        return created, await topic_differences(admin, specs)
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.kit.operator")
    sub = parser.add_subparsers(dest="command", required=True)
    status_p = sub.add_parser("outbox-status", help="unsent and set-aside events, acknowledged offsets, broker losses")
    status_p.add_argument("service")
    rep_p = sub.add_parser("republish", help="send every event since a time again")
    rep_p.add_argument("service")
    rep_p.add_argument("--since", type=aware, required=True)
    dlq_p = sub.add_parser("replay-dead-letters", help="send a consumer group's dead letters back to it")
    dlq_p.add_argument("service")
    dlq_p.add_argument("group")
    topics_p = sub.add_parser("topics", help="create the declared Kafka topics that are missing, or --check them")
    topics_p.add_argument("--check", action="store_true", help="create nothing; fail if the cluster differs")
    topics_p.add_argument("--file", type=Path, default=DECLARED, help="the topic declaration (deploy/kafka/topics.toml)")
    args = parser.parse_args(argv)
    if args.command == "outbox-status":
        for key, value in asyncio.run(outbox_status(args.service)).items():
            print(f"{key}: {value}")
    elif args.command == "republish":
        count = asyncio.run(republish(args.service, args.since))
        print(f"{count} events marked for re-publishing; the relay sends them shortly")
    elif args.command == "topics":
        created, differences = asyncio.run(topics(ServiceSettings(), check=args.check, declaration=args.file))
        for name in created:
            print(f"created {name}")
        for line in differences:
            print(f"differs: {line}")
        print(f"{len(created)} created, {len(differences)} differences")
        if differences:
            raise SystemExit(1)
    else:
        count = asyncio.run(replay_dead_letters(load_settings(args.service), args.group))
        print(f"{count} dead letters sent back to {args.group}")


if __name__ == "__main__":
    main()
