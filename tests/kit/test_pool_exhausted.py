"""A pool whose every connection stays in use past its timeout answers 503 busy, never 500."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from services.kit.db import make_engine
from services.kit.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from tests.support.stack import TestStack


async def test_an_exhausted_pool_is_a_503_with_retry_after(stack: TestStack) -> None:
    url = await stack.empty_database("pool")
    engine = make_engine(url, pool_size=1, max_overflow=0)
    engine.pool._timeout = 0.2  # type: ignore[attr-defined]  # the pool's wait, 30 s by default
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/count")
    async def count() -> dict[str, int]:
        async with engine.connect() as connection:
            return {"one": int((await connection.exec_driver_sql("SELECT 1")).scalar_one())}

    held = asyncio.Event()
    release = asyncio.Event()

    async def hold_the_one_connection() -> None:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold_the_one_connection())
    try:
        await held.wait()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
        ) as client:
            r = await client.get("/count")
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE) and r.headers["retry-after"] == "2"
            assert r.json()["type"].endswith("service-unavailable")
            release.set()
            await holder
            assert (await client.get("/count")).json() == {"one": 1}
    finally:
        release.set()
        await holder
        await engine.dispose()
        await stack.drop_database(url)
