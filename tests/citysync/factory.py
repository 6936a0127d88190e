"""A generated community: residents with names, phones, ID numbers, plates and addresses, and the
domain events the four services would publish about them, with the personal data in every place a
producer might put it (known fields, extra fields, free text)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.kit.envelope import CloudEvent

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "秀英桂兰建国志强晓燕磊丽杰军敏静伟芳娜涛明超华平刚桂芝玉兰"
PROVINCES = "浙苏沪皖闽赣"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class Resident:
    id: str
    household_id: str
    building_id: str
    building: str
    name: str
    phone: str
    id_number: str
    plate: str
    birth_date: date
    address: str


def _id_number(rng: random.Random, birth: date) -> str:
    body = f"{rng.randint(110000, 659999)}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


def residents(n: int, seed: int = 1) -> list[Resident]:
    rng = random.Random(seed)
    out: list[Resident] = []
    buildings = [(str(uuid.uuid4()), f"{b}幢") for b in range(1, 21)]
    phones: set[str] = set()
    for i in range(n):
        building_id, building = buildings[i % len(buildings)]
        birth = date(1935, 1, 1) + timedelta(days=rng.randrange(0, 365 * 70))
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        while phone in phones:
            phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        phones.add(phone)
        plate = f"{rng.choice(PROVINCES)}{rng.choice(PLATE_LETTERS)}{rng.randrange(10**5):05d}"
        unit = f"{rng.randint(1, 3)}单元{rng.randint(1, 18)}{rng.randint(1, 4):02d}"
        out.append(
            Resident(
                id=str(uuid.uuid4()),
                household_id=str(uuid.uuid4()),
                building_id=building_id,
                building=building,
                name=rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if i % 2 else ""),
                phone=phone,
                id_number=_id_number(rng, birth),
                plate=plate,
                birth_date=birth,
                address=f"白云社区{building}{unit}",
            )
        )
    return out


def event(type_: str, data: dict[str, object], key: str, source: str, at: datetime) -> CloudEvent:
    return CloudEvent(type=type_, source=source, data=data, key=key, time=at)


def community_events(community: str, people: list[Resident], start: datetime | None = None, seed: int = 2) -> list[CloudEvent]:
    """About five events per resident across the four scenes, personal data everywhere it could leak."""
    rng = random.Random(seed)
    at = start or datetime.now(UTC) - timedelta(days=3)
    events: list[CloudEvent] = []
    for i, p in enumerate(people):
        at += timedelta(seconds=37)
        other = people[(i + 1) % len(people)]
        events.append(
            event(
                "property.resident.registered.v1",
                {
                    "resident_id": p.id,
                    "community": community,
                    "household_id": p.household_id,
                    "building_id": p.building_id,
                    "name": p.name,
                    "phone": p.phone,
                    "roles": ["resident"],
                    # Fields a producer might add one day: none has an export rule that lets it out raw.
                    "id_card": p.id_number,
                    "id_number": p.id_number,
                    "birth_date": p.birth_date.isoformat(),
                    "address": p.address,
                    "plate": p.plate,
                    "emergency_contact": f"{other.name} {other.phone}",
                },
                p.id,
                "/services/property",
                at,
            )
        )
        kind = i % 4
        if kind == 0:
            transfer = str(uuid.uuid4())
            events.append(
                event(
                    "timebank.service.confirmed.v1",
                    {
                        "transfer_id": transfer,
                        "community": community,
                        "volunteer_id": p.id,
                        "elder_id": other.id,
                        "minutes": rng.choice([30, 60, 90]),
                        "service_type": rng.choice(["companionship", "meal", "cleaning"]),
                        "confirmed_at": at.isoformat(),
                        "volunteer_name": p.name,
                        "elder_phone": other.phone,
                    },
                    transfer,
                    "/services/timebank",
                    at,
                )
            )
            if i % 8 == 0:
                expiry = str(uuid.uuid4())
                events.append(
                    event(
                        "timebank.hours.expired.v1",
                        {
                            "transfer_id": expiry,
                            "community": community,
                            "member_id": other.id,
                            "minutes": 45,
                            "valid_months": 36,
                            "expired_at": at.isoformat(),
                            "member_name": other.name,
                            "member_phone": other.phone,
                        },
                        expiry,
                        "/services/timebank",
                        at,
                    )
                )
        elif kind == 1:
            booking = str(uuid.uuid4())
            events.append(
                event(
                    "parking.booking.completed.v1",
                    {
                        "booking_id": booking,
                        "community": community,
                        "spot_id": str(uuid.uuid4()),
                        "owner_id": other.id,
                        "booker_id": p.id,
                        "start": (at - timedelta(hours=2)).isoformat(),
                        "end": at.isoformat(),
                        "fee_fen": 1200,
                        "owner_share_fen": 840,
                        "completed_at": at.isoformat(),
                        "plate": p.plate,
                        "plate_number": p.plate,
                    },
                    booking,
                    "/services/parking",
                    at,
                )
            )
        elif kind == 2:
            ticket = str(uuid.uuid4())
            events.append(
                event(
                    "property.ticket.submitted.v1",
                    {
                        "ticket_id": ticket,
                        "community": community,
                        "category": "repair",
                        "status": "submitted",
                        "service_code": None,
                        "priority": "normal",
                        "building_id": p.building_id,
                        "household_id": p.household_id,
                        "resident_id": p.id,
                        "assignee_id": str(uuid.uuid4()),
                        "routed_via": "building",
                        "response_due_at": at.isoformat(),
                        "resolution_due_at": at.isoformat(),
                        "submitted_at": at.isoformat(),
                        "description": f"{p.name}家水管漏水，电话{p.phone}，车牌{p.plate}",
                        "contact_phone": p.phone,
                    },
                    ticket,
                    "/services/property",
                    at,
                )
            )
            events.append(
                event(
                    "property.ticket.completed.v1",
                    {
                        "ticket_id": ticket,
                        "community": community,
                        "category": "repair",
                        "status": "completed",
                        "assignee_id": None,
                        "resident_id": p.id,
                        "completed_at": at.isoformat(),
                        "on_time": i % 3 != 0,
                        "comment": f"谢谢，{p.name}",
                        "feedback": p.phone,
                    },
                    ticket,
                    "/services/property",
                    at,
                )
            )
        else:
            grant = str(uuid.uuid4())
            events.append(
                event(
                    "governance.points.granted.v1",
                    {
                        "grant_id": grant,
                        "community": community,
                        "resident_id": p.id,
                        "points": 60,
                        "source": "rule",
                        "trigger": "checkin.garbage_sorting",
                        "rule_id": str(uuid.uuid4()),
                        "granted_at": at.isoformat(),
                        "resident_name": p.name,
                        "resident_phone": p.phone,
                    },
                    grant,
                    "/services/governance",
                    at,
                )
            )
            redemption = str(uuid.uuid4())
            events.append(
                event(
                    "governance.redemption.reserved.v1",
                    {
                        "redemption_id": redemption,
                        "community": community,
                        "resident_id": p.id,
                        "reward_id": "haircut",
                        "fulfilment": "property",
                        "service_code": "haircut",
                        "points": 50,
                        "quantity": 1,
                    },
                    redemption,
                    "/services/governance",
                    at,
                )
            )
            events.append(
                event(
                    "governance.redemption.released.v1",
                    {
                        "redemption_id": redemption,
                        "community": community,
                        "resident_id": p.id,
                        "points": 50,
                        "reason": f"{p.name}({p.id_number})取消了预约",
                    },
                    redemption,
                    "/services/governance",
                    at,
                )
            )
    return events
