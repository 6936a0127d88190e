"""A tiny service built with the kit, used only to test the kit itself.

It writes notes (one transaction: the note row and its outbox event) and, in a consumer group,
tallies them per key, recording whether each note arrived in the order it was written.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Field as SQLField
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.app import ServiceParts, create_service_app
from services.kit.auth import CurrentPrincipal
from services.kit.db import SessionDep, model_base, transaction
from services.kit.envelope import CloudEvent, EventData
from services.kit.idempotency import IdempotencyDep
from services.kit.inbox import ConsumerSpec
from services.kit.outbox import EventPublisher
from services.kit.settings import ServiceSettings

ProbeModel = model_base("ProbeModel")
TOPIC = "probe.events"
publisher = EventPublisher(source="/services/probe", topic=TOPIC)


class ProbeSettings(ServiceSettings):
    service_name: str = "probe"


class Note(ProbeModel, table=True):  # type: ignore[call-arg]
    __tablename__ = "notes"
    id: int | None = SQLField(default=None, primary_key=True)
    key: str
    seq: int
    poison: bool = False


class Tally(ProbeModel, table=True):  # type: ignore[call-arg]
    __tablename__ = "tallies"
    key: str = SQLField(primary_key=True)
    applied: int = 0
    last_seq: int = 0
    out_of_order: int = 0


class NoteWritten(EventData):
    event_type = "probe.note.written.v1"
    key: str
    seq: int
    poison: bool = False


class NoteIn(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=40)]
    seq: Annotated[int, Field(ge=1)]
    poison: bool = False


class NoteOut(BaseModel):
    id: int
    key: str
    seq: int


async def write_note(session: AsyncSession, data: NoteIn) -> Note:
    async with transaction(session):
        note = Note(key=data.key, seq=data.seq, poison=data.poison)
        session.add(note)
        await session.flush()
        await publisher.publish(session, NoteWritten(key=data.key, seq=data.seq, poison=data.poison), key=data.key)
        return note


router = APIRouter(tags=["probe"])


@router.post("/notes", status_code=201, response_model=NoteOut)
async def post_note(body: NoteIn, who: CurrentPrincipal, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: write_note(session, body), NoteOut)


# The consumer's behaviour for poison events is switchable, to test the dead-letter replay; its
# pace too, so a drill can have it lag behind what the broker acknowledged.
POISON = {"enabled": True}
APPLY_DELAY_S = {"value": 0.0}


async def on_note_written(session: AsyncSession, event: CloudEvent) -> None:
    data = event.parse(NoteWritten)
    if APPLY_DELAY_S["value"]:
        await asyncio.sleep(APPLY_DELAY_S["value"])
    if data.poison and POISON["enabled"]:
        raise ValueError(f"poison note {data.key}")  # an error that quotes the data, as errors do
    current = (await session.execute(select(Tally).where(Tally.key == data.key).with_for_update())).scalar_one_or_none()
    if current is None:
        await session.execute(
            insert(Tally).values(key=data.key, applied=1, last_seq=data.seq, out_of_order=0 if data.seq == 1 else 1)
        )
        return
    current.out_of_order += 0 if data.seq == current.last_seq + 1 else 1
    current.applied += 1
    current.last_seq = data.seq


tally_consumer = ConsumerSpec(group="probe-tally", topics=[TOPIC], handlers={NoteWritten.event_type: on_note_written})


batched_tally_consumer = ConsumerSpec(
    group="probe-tally-batched", topics=[TOPIC], handlers={NoteWritten.event_type: on_note_written}, apply_in_batches=True
)


def create_app(settings: ProbeSettings, *, batched: bool = False, partitions_at_once: int = 1) -> FastAPI:
    consumer = replace(batched_tally_consumer if batched else tally_consumer, partitions_at_once=partitions_at_once)
    return create_service_app(
        settings, ServiceParts(routers=[router], consumers=[consumer]), title="probe", description="kit test service"
    )


async def create_schema(database_url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from services.kit.db import asyncpg_url
    from services.kit.tables import kit_metadata

    engine = create_async_engine(asyncpg_url(database_url))
    async with engine.begin() as conn:
        await conn.run_sync(kit_metadata.create_all)
        await conn.run_sync(ProbeModel.metadata.create_all)
    await engine.dispose()
