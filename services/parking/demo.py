"""Demo data for `make run`, created through parking's own HTTP API for the demo community."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from deploy.local import demo_community as demo
from services.parking import domain


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"parking demo seed: {response.request.method} {response.request.url.path} "
            f"-> {response.status_code}: {response.text[:300]}"
        )
    return response.json()


@dataclass
class _DemoCalls:
    """Parking's HTTP API as the demo's people call it."""

    client: httpx.AsyncClient
    token_for: Callable[[str, list[str]], str]

    def auth(self, subject: str, roles: list[str] | tuple[str, ...]) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(subject, list(roles))}"}

    @property
    def steward(self) -> dict[str, str]:
        return self.auth(demo.staff("steward.wu").id, ["steward"])

    async def private_spot(self, resident: demo.Person, code: str, **extra: Any) -> tuple[str, dict[str, str]]:
        """Register a resident's spot and have the steward verify it; returns its id and the owner's headers."""
        owner = self.auth(resident.id, resident.roles)
        spot = _ok(
            await self.client.post(
                "/spots", json={"code": code, "location": f"{resident.building} 地下车库", **extra}, headers=owner
            )
        )
        _ok(await self.client.post(f"/spots/{spot['id']}/verification", json={"approve": True}, headers=self.steward))
        return str(spot["id"]), owner

    async def book(self, person: demo.Person, spot: str, start: datetime, end: datetime, plate: str) -> dict[str, Any]:
        """Book and pay a spot for a plate."""
        who = self.auth(person.id, person.roles)
        booking = _ok(
            await self.client.post(
                "/bookings",
                headers=who,
                json={"spot_id": spot, "starts_at": start.isoformat(), "ends_at": end.isoformat(), "plate": plate},
            )
        )
        return dict(_ok(await self.client.post(f"/bookings/{booking['id']}/payment", json={}, headers=who)))


async def seed_demo(client: httpx.AsyncClient, token_for: Callable[[str, list[str]], str]) -> None:
    api = _DemoCalls(client, token_for)
    steward = api.steward
    admin = demo.staff("admin.qian")
    _ok(
        await client.put(
            "/settings", json={"owner_share_bp": 7000, "property_share_bp": 2000}, headers=api.auth(admin.id, admin.roles)
        )
    )
    for device_id, name in demo.GATE_DEVICES:
        _ok(await client.post("/gate-devices", json={"id": device_id, "name": name}, headers=steward))

    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)

    # Private spots lent while their owners are at work, overnight, or away today.
    sun_spot, sun = await api.private_spot(demo.resident("孙丽"), "B4-018", has_charger=True)
    _ok(
        await client.post(
            f"/spots/{sun_spot}/windows",
            headers=sun,
            json={
                "kind": "weekly",
                "weekdays": [1, 2, 3, 4, 5],
                "local_start": "08:00",
                "local_end": "18:00",
                "price_fen_per_30min": 300,
            },
        )
    )
    chen_spot, chen = await api.private_spot(demo.resident("陈志强"), "B2-006")
    _ok(
        await client.post(
            f"/spots/{chen_spot}/windows",
            headers=chen,
            json={
                "kind": "weekly",
                "weekdays": [1, 2, 3, 4, 5, 6, 7],
                "local_start": "22:00",
                "local_end": "07:00",
                "price_fen_per_30min": 200,
                "buffer_minutes": 15,
            },
        )
    )
    zhou_spot, zhou = await api.private_spot(demo.resident("周杰"), "B4-031", size="large")
    _ok(
        await client.post(
            f"/spots/{zhou_spot}/windows",
            headers=zhou,
            json={
                "kind": "one_off",
                "starts_at": now.isoformat(),
                "ends_at": (now + timedelta(days=2)).isoformat(),
                "price_fen_per_30min": 250,
            },
        )
    )

    # Public spots, open for the next month at the community's rate.
    public = []
    for code in ("P-01", "P-02", "P-03"):
        spot = _ok(
            await client.post("/spots", json={"kind": "public", "code": code, "location": "北门地面停车场"}, headers=steward)
        )
        _ok(
            await client.post(
                f"/spots/{spot['id']}/windows",
                headers=steward,
                json={
                    "kind": "one_off",
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(days=30)).isoformat(),
                    "price_fen_per_30min": 300,
                },
            )
        )
        public.append(str(spot["id"]))

    gate = api.auth("gate-north", ["gate_device"])

    # Past: 赵磊 used 周杰's spot and has left (the owner earns his share; the event reaches governance).
    await api.book(demo.resident("赵磊"), zhou_spot, now, now + timedelta(hours=1), "浙K7D301")
    _ok(await client.post("/gate/entries", json={"plate": "浙K7D301"}, headers=gate))
    _ok(await client.post("/gate/exits", json={"plate": "浙K7D301"}, headers=gate))
    # Present: 刘晓燕's visitor is parked on a public spot.
    await api.book(demo.resident("刘晓燕"), public[0], now, now + timedelta(hours=3), "浙KD52088")
    _ok(await client.post("/gate/entries", json={"plate": "浙KD52088"}, headers=gate))
    # Future: 刘晓燕 books 孙丽's spot next weekday morning; 张建国 books 陈志强's spot tonight.
    day = domain.local_today(now) + timedelta(days=1)
    while day.isoweekday() > 5:
        day += timedelta(days=1)
    morning = datetime.combine(day, datetime.min.time(), tzinfo=domain.COMMUNITY_TZ) + timedelta(hours=9)
    await api.book(demo.resident("刘晓燕"), sun_spot, morning, morning + timedelta(hours=3), "浙K2N817")
    tonight = datetime.combine(
        domain.local_today(now) + timedelta(days=1), datetime.min.time(), tzinfo=domain.COMMUNITY_TZ
    ) + timedelta(hours=1)
    await api.book(demo.resident("张建国"), chen_spot, tonight, tonight + timedelta(hours=4), "浙K0L662")
    # A car without a booking arrives and parks at the public rate.
    _ok(await client.post("/gate/entries", json={"plate": "浙A3C119"}, headers=gate))
