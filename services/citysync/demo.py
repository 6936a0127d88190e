"""Demo data for `make run`: the city's sync consumer of the demo community, granted every feed,
registered through citysync's own HTTP API by the community worker."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from deploy.local import demo_community as demo
from services.citysync.domain import SCENES


def _ok(response: httpx.Response, *, allow_conflict: bool = False) -> None:
    if response.status_code == 409 and allow_conflict:
        return  # already there from an earlier, interrupted seed
    if response.status_code >= 400:
        raise RuntimeError(
            f"citysync demo seed: {response.request.method} {response.request.url.path} "
            f"-> {response.status_code}: {response.text[:300]}"
        )


async def seed_demo(client: httpx.AsyncClient, token_for: Callable[[str, list[str]], str]) -> None:
    worker = demo.staff("worker.feng")
    headers = {"Authorization": f"Bearer {token_for(worker.id, list(worker.roles))}"}
    for client_id, name in demo.CITY_SYNC_CLIENTS:
        _ok(await client.post("/consumers", json={"id": client_id, "name": name}, headers=headers), allow_conflict=True)
        for scene in SCENES:
            _ok(await client.post(f"/consumers/{client_id}/grants", json={"scene": scene}, headers=headers), allow_conflict=True)
