"""Demo data for `make run`: a living time bank in the demo community, made through the HTTP API.

Elders and volunteers enrolled and verified, a funded pool (公益池), a history of services the
worker entered from paper records, one service under way, open care requests, a donation and a
withdrawal.
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

    # The history: services done before the app, entered by the worker from the paper records in one
    # linked batch (a volunteer's check-in is never before the app saw the request accepted).
    history = [
        ("王秀英", "陈志强", "companionship", 90),
        ("王秀英", "刘晓燕", "shopping", 45),
        ("李桂兰", "张建国", "meal", 60),
        ("李桂兰", "赵磊", "cleaning", 120),
        ("王秀英", "周杰", "medical_escort", 150),
    ]
    pool = _ok(await client.get("/pool", headers=w)).json()["pool"]["id"]
    batch = []
    for n, (elder_name, volunteer_name, kind, minutes) in enumerate(history):
        account = _ok(await client.get(f"/members/{resident(volunteer_name).id}", headers=w)).json()["account_id"]
        batch.append(
            {
                "id": _id(f"demo-service-{n}"),
                "kind": "service",
                "debit_account_id": pool,
                "credit_account_id": account,
                "minutes": minutes,
                "service_type": kind,
                "elder_id": resident(elder_name).id,
            }
        )
    _ok(await client.post("/transfers/batch", json={"transfers": batch}, headers=w))

    # One service under way: 刘晓燕 is with 李桂兰 now; she checks out in the app, and 李桂兰 or her
    # daughter confirms. Request bodies hang on the day, not the second, so a second run replays them.
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elder, volunteer = resident("李桂兰"), resident("刘晓燕")
    ve = as_(volunteer.id, list(volunteer.roles))
    r = _ok(
        await client.post(
            "/care-requests",
            json={
                "elder_id": elder.id,
                "service_type": "companionship",
                "starts_at": day.isoformat(),
                "place": f"{elder.building} {elder.unit}",
                "minutes_estimated": 60,
            },
            headers={**w, "Idempotency-Key": "demo-service-under-way"},
        )
    )
    rid = r.json()["id"]
    if _ok(await client.get(f"/care-requests/{rid}", headers=w)).json()["status"] == "open":
        _ok(await client.post(f"/care-requests/{rid}/accept", headers=ve))
        _ok(await client.post(f"/care-requests/{rid}/check-in", json={}, headers=ve))

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
