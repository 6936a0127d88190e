"""No resident's identity leaves: a generated community of 2,000 residents, scanned everywhere the
feed goes (the stored records, each consumer's pulls, the city topics' outbox rows)."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import text

from services.citysync.domain import SCENES
from services.citysync.privacy import HASHED_FIELDS, ID_CARD_RE, PHONE_RE, PLATE_RE
from tests.citysync import factory
from tests.citysync.conftest import Community, ingest_all, wait_until

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def strings(value: Any, hashed: bool = False) -> list[tuple[str, bool]]:
    """Every string in a JSON value, with whether it sits in a keyed-hash field."""
    if isinstance(value, str):
        return [(value, hashed)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v, hashed)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(v, k in HASHED_FIELDS)]
    return []


def assert_no_identity(documents: list[Any], people: list[factory.Resident], hash_re: re.Pattern[str]) -> int:
    known = (
        {p.name for p in people}
        | {p.phone for p in people}
        | {p.id_number for p in people}
        | {p.plate for p in people}
        | {p.address for p in people}
    )
    known_names = sorted({p.name for p in people}, key=len, reverse=True)
    name_re = re.compile("|".join(map(re.escape, known_names)))
    checked = 0
    for doc in documents:
        blob = json.dumps(doc, ensure_ascii=False)
        assert not name_re.search(blob), blob
        for value, hashed in strings(doc):
            checked += 1
            assert value not in known
            if hashed:
                # A hash is a hash: hex of the expected width, never an identifier in disguise.
                assert hash_re.match(value), value
            else:
                assert not PHONE_RE.search(value), value
                assert not ID_CARD_RE.search(value), value
                assert not PLATE_RE.search(value), value
        for p in people[:50]:
            assert p.phone not in blob and p.id_number not in blob and p.plate not in blob
    return checked


async def test_two_thousand_residents_leave_no_identity(community: Community) -> None:
    people = factory.residents(2000)
    events = factory.community_events(community.id, people)
    seqs = await ingest_all(community.svc, events)
    assert len(seqs) == len(events)  # every one of these types makes a record
    headers = await community.register("city-scan")
    pulled: list[dict[str, Any]] = []
    for scene in SCENES:
        pulled.extend(await community.pull_all(headers, scene))
    assert len(pulled) == len(events)
    assert assert_no_identity(pulled, people, HEX32) > 20_000

    async def topics_written() -> bool:
        async with community.svc.state.sessionmaker() as session, session.begin():
            count = (
                await session.execute(text("SELECT count(*) FROM kit_outbox WHERE key = :c"), {"c": community.id})
            ).scalar_one()
        return bool(count == len(events))

    await wait_until(topics_written, timeout=60, interval=0.2)  # the city-topics job copies them
    async with community.svc.state.sessionmaker() as session, session.begin():
        stored = (
            (await session.execute(text("SELECT payload FROM feed_records WHERE community = :c"), {"c": community.id}))
            .scalars()
            .all()
        )
        topics = (
            (
                await session.execute(
                    text("SELECT data FROM kit_outbox WHERE key = :c AND topic LIKE 'city.%'"), {"c": community.id}
                )
            )
            .scalars()
            .all()
        )
    assert len(stored) == len(topics) == len(events)
    assert_no_identity(list(stored), people, HEX64)  # what is stored holds platform hashes only
    assert_no_identity([t["data"] for t in topics], people, HEX32)

    # The generalisations took place: ages in bands, addresses as buildings.
    registered = [r["data"] for r in pulled if r["record_type"] == "resident_registered"]
    assert len(registered) == 2000
    assert all(re.fullmatch(r"\d{1,2}-\d{1,3}|100\+", r["age_band"]) for r in registered)
    assert {r["address"] for r in registered} == {f"{b}幢" for b in range(1, 21)}
    assert not any("name" in r or "id_card" in r or "id_number" in r or "emergency_contact" in r for r in registered)
