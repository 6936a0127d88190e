"""Demo data for `make run`, created through security's own HTTP API for the demo community: its
doors, a smoke sensor and 王秀英's in-home sensor, a visitor pass from 王秀英 for this afternoon,
a week's visitor pass from 刘晓燕 for a car (`demo.VISITOR_PLATE`: parking's gates let it in without
a booking, from `security.pass.car_allowed.v1`), and 王秀英 in the inactivity watch with her son's consent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from deploy.local import demo_community as demo

# Property's registration of the residents reaches security through Kafka: wait for it this long.
REGISTRY_WAIT_S = 60.0


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"security demo seed: {response.request.method} {response.request.url.path} "
            f"-> {response.status_code}: {response.text[:300]}"
        )
    return response.json() if response.content else None


async def _as_soon_as_known(call: Callable[[], Any]) -> Any:
    """Retry a resident's first call while security has not yet heard of them from property."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REGISTRY_WAIT_S
    while True:
        response: httpx.Response = await call()
        if response.status_code != 403 or loop.time() > deadline:
            return _ok(response)
        await asyncio.sleep(0.5)


async def seed_demo(client: httpx.AsyncClient, token_for: Callable[[str, list[str]], str]) -> None:
    def auth(subject: str, roles: list[str] | tuple[str, ...]) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(subject, list(roles))}"}

    worker = auth(demo.staff("worker.feng").id, ["community_worker"])
    buildings = {b.code: b.id for b in demo.BUILDINGS}
    for device_id, building, kind, name, unit in demo.SECURITY_DEVICES:
        body: dict[str, Any] = {
            "id": device_id,
            "building_id": buildings[building],
            "kind": kind,
            "name": name,
            "heartbeat_s": 300,
        }
        if unit:
            body["household_id"] = demo.demo_id("household", f"{building}-{unit}")  # as property's demo names it
        _ok(await client.post("/devices", json=body, headers=worker))
    wang = demo.resident("王秀英")
    as_wang = auth(wang.id, wang.roles)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    visit = {"valid_from": start.isoformat(), "valid_until": (start + timedelta(hours=4)).isoformat(), "max_entries": 2}
    await _as_soon_as_known(lambda: client.post("/passes", json=visit, headers=as_wang))
    host = demo.resident(demo.VISITOR_HOST)
    as_host = auth(host.id, host.roles)
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    car = {
        "valid_from": this_hour.isoformat(),
        "valid_until": (this_hour + timedelta(days=7)).isoformat(),
        "max_entries": 10,
        "plate": demo.VISITOR_PLATE,
    }
    await _as_soon_as_known(lambda: client.post("/passes", json=car, headers=as_host))
    watch = _ok(await client.post("/watches", json={"relative_id": demo.RELATIVE_OF_WANG, "hours": 24}, headers=as_wang))
    _ok(await client.post(f"/watches/{watch['id']}/consent", headers=auth(demo.RELATIVE_OF_WANG, ["resident"])))
