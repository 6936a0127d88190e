"""Demo data for `make run`: the demo community's registry, a catalogue, and tickets in every status.

Everything goes through the service's HTTP API, as a property admin, the residents and the stewards
would do it. Property seeds first: the other services' seeds assume these ids exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from deploy.local.demo_community import BUILDINGS, RESIDENTS, STAFF, demo_id

ALL_WEEK = [{"weekday": d, "start_minute": 0, "end_minute": 1440} for d in range(7)]
CATALOGUE: list[dict[str, Any]] = [
    {"code": "aircon-clean", "name": "空调清洗", "price_fen": 8000},
    {"code": "haircut-home", "name": "上门理发", "price_fen": 3000},
    {"code": "appliance-repair", "name": "家电维修 (上门报价)"},
]


def household_id(building_code: str, unit: str) -> str:
    return demo_id("household", f"{building_code}-{unit}")


# Exclusive areas (专有部分面积) in hundredths of a square metre, and the one tenant among the residents.
EXCLUSIVE_AREAS = (8950, 12020, 9480, 10360)
TENANTS = frozenset({"周杰"})


async def seed_demo(client: httpx.AsyncClient, token_for: Callable[[str, list[str]], str]) -> None:
    admin = next(s for s in STAFF if "property_admin" in s.roles)
    as_admin = {"Authorization": f"Bearer {token_for(admin.id, ['property_admin'])}"}

    async def call(method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
        r = await client.request(method, path, json=body, headers=headers)
        if r.status_code >= 400:
            raise RuntimeError(f"demo seed: {method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    codes = {b.code: b.id for b in BUILDINGS}
    for b in BUILDINGS:
        await call("POST", "/buildings", as_admin, {"id": b.id, "code": b.code, "name": b.name})
    for i, unit in enumerate(sorted({(p.building, p.unit) for p in RESIDENTS})):
        area = EXCLUSIVE_AREAS[i % len(EXCLUSIVE_AREAS)]
        household = {"id": household_id(*unit), "building_id": codes[unit[0]], "unit": unit[1], "exclusive_area": area}
        await call("POST", "/households", as_admin, household)
    for p in RESIDENTS:
        await call(
            "POST",
            "/residents",
            as_admin,
            {
                "id": p.id,
                "household_id": household_id(p.building, p.unit),
                "name": p.name,
                "phone": p.phone,
                "roles": list(p.roles),
                "owner": p.name not in TENANTS,
            },
        )
    for s in STAFF:
        await call(
            "POST",
            "/staff",
            as_admin,
            {
                "id": s.id,
                "name": s.name,
                "username": s.username,
                "roles": list(s.roles),
                "buildings": [codes[c] for c in s.buildings],
                "backup_for": [codes[c] for c in s.backup_for],
            },
        )
    stewards = [s for s in STAFF if "steward" in s.roles]
    for item in CATALOGUE:
        await call("POST", "/catalogue", as_admin, item)

    def resident(i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(RESIDENTS[i].id, list(RESIDENTS[i].roles))}"}

    steward_of = {c: s for s in stewards for c in s.buildings}

    def steward_for(i: int) -> dict[str, str]:
        s = steward_of[RESIDENTS[i].building]
        return {"Authorization": f"Bearer {token_for(s.id, ['steward'])}"}

    # One ticket in the community queue: filed while no steward was on duty.
    for s in stewards:
        await call("PUT", f"/staff/{s.id}/roster", as_admin, {"shifts": []})
    await call("POST", "/tickets", resident(6), {"category": "complaint", "description": "楼道夜间噪音"})
    for s in stewards:
        await call("PUT", f"/staff/{s.id}/roster", as_admin, {"shifts": ALL_WEEK})

    # (resident index, category, service code, description, actions by whom)
    plans: list[tuple[int, str, str | None, str, list[tuple[str, str, Any]]]] = [
        (0, "repair", None, "厨房水龙头漏水", []),
        (1, "cleaning", None, "楼道堆放杂物", [("s", "accept", None)]),
        (2, "service", "appliance-repair", "洗衣机不脱水", [("s", "accept", None), ("s", "quote", {"amount_fen": 12000})]),
        (
            3,
            "service",
            "appliance-repair",
            "冰箱不制冷",
            [("s", "accept", None), ("s", "quote", {"amount_fen": 15000}), ("r", "approve-quote", None)],
        ),
        (4, "repair", None, "卫生间灯不亮", [("s", "accept", None), ("s", "start", None)]),
        (
            5,
            "repair",
            None,
            "门禁卡失灵",
            [("s", "accept", None), ("s", "start", None), ("s", "pause", {"waiting_on": "parts", "reason": "等待配件"})],
        ),
        (6, "service", "aircon-clean", "客厅空调清洗", [("s", "accept", None), ("s", "start", None), ("s", "complete", None)]),
        (
            7,
            "repair",
            None,
            "阳台下水堵塞",
            [
                ("s", "accept", None),
                ("s", "start", None),
                ("s", "complete", None),
                ("r", "confirm", None),
                ("r", "rate", {"overall": 5, "speed": 5, "comment": "吴管家很及时"}),
            ],
        ),
        (
            0,
            "consultation",
            None,
            "咨询物业费缴纳方式",
            [
                ("s", "accept", None),
                ("s", "start", None),
                ("s", "complete", None),
                ("r", "confirm", None),
                ("s", "follow-up", {"note": "电话回访, 住户满意"}),
                ("a", "close", {}),
            ],
        ),
        (2, "cleaning", None, "预约清洗外窗 (已改期)", [("r", "cancel", {"reason": "改期"})]),
        (3, "repair", None, "楼下路灯闪烁", []),
    ]
    for index, category, code, description, actions in plans:
        body: dict[str, Any] = {"category": category, "description": description}
        if code:
            body["service_code"] = code
        ticket = await call("POST", "/tickets", resident(index), body)
        for who, action, payload in actions:
            headers = {"r": resident(index), "s": steward_for(index), "a": as_admin}[who]
            await call("POST", f"/tickets/{ticket['id']}/{action}", headers, payload)
