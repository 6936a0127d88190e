"""Demo data for `make run`: a living time bank in the demo community, made through the HTTP API.

Elders and volunteers enrolled and verified, a funded pool (公益池), a history of confirmed
services, one service awaiting confirmation, open care requests, a donation and a withdrawal.
Transfer ids are derived from stable names, so running the seed twice changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import httpx

from deploy.local.demo_community import RESIDENTS, resident, staff

_NS = uuid.UUID("4d3c1b2a-0f9e-4c8d-9b7a-6e5f4d3c2b1a")


def _id(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


def _ok(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        raise RuntimeError(f"timebank demo seed: {r.request.method} {r.request.url.path} -> {r.status_code} {r.text}")
    return r


def _bearer(token_for: Callable[[str, list[str]], str], subject: str, roles: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(subject, roles)}"}


async def seed_demo(client: httpx.AsyncClient, token_for: Callable[[str, list[str]], str]) -> None:
    worker = staff("worker.feng")
    as_ = partial(_bearer, token_for)
    w = as_(worker.id, list(worker.roles))
    _ok(
        await client.put(
            "/settings",
            json={
                "withdrawal_age": 60,
                "storage_cap_minutes": 90_000,
                "min_balance_before_first_withdrawal": 0,
                "confirmation_timeout_minutes": 4_320,
            },
            headers=w,
        )
    )
    for person in RESIDENTS:
        is_volunteer, is_elder = "volunteer" in person.roles, "elder" in person.roles
        if not (is_volunteer or is_elder):
            continue
        _ok(await client.post("/members", json={"member_id": person.id, "volunteer": is_volunteer, "elder": is_elder}, headers=w))
        if is_elder:
            # 王秀英 and 李桂兰 live alone: priority elders, served from the pool.
            _ok(
                await client.post(
                    f"/members/{person.id}/verification",
                    json={"birth_date": person.birth_date.isoformat(), "priority_elder": person.name in ("王秀英", "李桂兰")},
                    headers=w,
                )
            )
    # 孙丽 is 李桂兰's daughter: she enrols to look after her mother's requests.
    daughter, mother = resident("孙丽"), resident("李桂兰")
    _ok(await client.post("/members", json={"member_id": daughter.id, "volunteer": True}, headers=w))
    _ok(await client.post(f"/members/{mother.id}/relatives", json={"relative_id": daughter.id, "relation": "子女"}, headers=w))
    _ok(
        await client.post(
            "/transfers/funding",
            json={"id": _id("pool-funding-1"), "minutes": 3_000, "reason": "街道公益时长拨付 (demo)"},
            headers=w,
        )
    )

    # Request bodies hang on the day, not the second, so a second run the same day replays them.
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    services = [
        ("王秀英", "陈志强", "companionship", 90, 6, "confirm"),
        ("王秀英", "刘晓燕", "shopping", 45, 5, "confirm"),
        ("李桂兰", "张建国", "meal", 60, 4, "confirm"),
        ("李桂兰", "赵磊", "cleaning", 120, 3, "confirm"),
        ("王秀英", "周杰", "medical_escort", 150, 2, "confirm"),
        ("李桂兰", "刘晓燕", "companionship", 60, 1, "pending"),
    ]
    for n, (elder_name, volunteer_name, kind, minutes, days_ago, outcome) in enumerate(services):
        elder, volunteer = resident(elder_name), resident(volunteer_name)
        ve = as_(volunteer.id, list(volunteer.roles))
        key = f"demo-service-{n}"
        r = _ok(
            await client.post(
                "/care-requests",
                json={
                    "elder_id": elder.id,
                    "service_type": kind,
                    "starts_at": (day - timedelta(days=days_ago)).isoformat(),
                    "place": f"{elder.building} {elder.unit}",
                    "minutes_estimated": minutes,
                },
                headers={**w, "Idempotency-Key": key},
            )
        )
        rid = r.json()["id"]
        request = _ok(await client.get(f"/care-requests/{rid}", headers=w)).json()
        if request["status"] != "open":
            continue  # seeded before
        start = day - timedelta(days=days_ago) + timedelta(hours=1)
        _ok(await client.post(f"/care-requests/{rid}/accept", headers=ve))
        _ok(await client.post(f"/care-requests/{rid}/check-in", json={"at": start.isoformat()}, headers=ve))
        pending = _id(f"{key}-pending")
        _ok(
            await client.post(
                f"/care-requests/{rid}/check-out",
                json={"transfer_id": pending, "at": (start + timedelta(minutes=minutes)).isoformat()},
                headers=ve,
            )
        )
        if outcome == "confirm":
            _ok(await client.post(f"/transfers/{pending}/confirm", json={"id": _id(f"{key}-posted")}, headers=w))

    for n, (elder_name, kind, place) in enumerate([("王秀英", "bathing", "1幢101"), ("李桂兰", "meal", "1幢102")]):
        elder = resident(elder_name)
        _ok(
            await client.post(
                "/care-requests",
                json={
                    "elder_id": elder.id,
                    "service_type": kind,
                    "starts_at": (day + timedelta(days=n + 1, hours=1)).isoformat(),
                    "place": place,
                    "minutes_estimated": 60,
                },
                headers={**w, "Idempotency-Key": f"demo-open-{n}"},
            )
        )

    donor = resident("周杰")
    _ok(
        await client.post(
            "/transfers/donation", json={"id": _id("donation-zhoujie"), "minutes": 30}, headers=as_(donor.id, list(donor.roles))
        )
    )
    spender = resident("张建国")  # 73, a volunteer who now draws on his own hours
    _ok(
        await client.post(
            "/transfers/spend",
            json={"id": _id("spend-zhangjianguo"), "minutes": 20, "service_type": "meal"},
            headers=as_(spender.id, list(spender.roles)),
        )
    )
