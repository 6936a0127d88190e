"""Login codes live in Redis, shared by every gateway replica: a code sent through gateway A logs
in through gateway B, once, and wrong guesses count together whichever replica they reach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.gateway.conftest import COMMUNITY, random_phone, register_resident, running_gateway, sender
from tests.support.harness import RunningService
from tests.support.stack import TestStack


@asynccontextmanager
async def two_gateways(stack: TestStack, template: str) -> AsyncIterator[tuple[RunningService, RunningService]]:
    """Two gateway apps on one database and one Redis, as two pods of the Deployment are."""
    url = await stack.empty_database("gateway", template=template)
    try:
        async with (
            running_gateway(stack, template, database_url=url, upstreams={}) as a,
            running_gateway(stack, template, database_url=url, upstreams={}) as b,
        ):
            yield a, b
    finally:
        await stack.drop_database(url)


async def test_a_code_sent_through_one_gateway_logs_in_through_the_other_once(stack: TestStack, gateway_template: str) -> None:
    async with two_gateways(stack, gateway_template) as (a, b):
        phone = random_phone()
        resident_id = await register_resident(a, phone)
        r = await a.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})
        assert r.status_code == 202
        code = sender(a).sent[phone][-1]
        assert phone not in sender(b).sent, "B sent nothing: the code it accepts is the one A sent"
        grant = {"grant_type": "otp", "community": COMMUNITY, "phone": phone, "code": code}
        r = await b.client.post("/auth/token", json=grant)
        assert r.status_code == 200, r.text
        me = await a.client.get("/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert me.status_code == 200 and me.json()["subject"] == resident_id
        # Used at B, it is used everywhere.
        assert (await a.client.post("/auth/token", json=grant)).status_code == 401


async def test_wrong_guesses_count_together_across_gateways(stack: TestStack, gateway_template: str) -> None:
    async with two_gateways(stack, gateway_template) as (a, b):
        phone = random_phone()
        await register_resident(a, phone)
        await b.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})
        code = sender(b).sent[phone][-1]
        grant = {"grant_type": "otp", "community": COMMUNITY, "phone": phone, "code": code}
        wrong = {**grant, "code": f"{(int(code) + 1) % 1_000_000:06d}"}
        for replica in (a, b, a, b, a):  # five wrong guesses, spread over both replicas
            assert (await replica.client.post("/auth/token", json=wrong)).status_code == 401
        for replica in (a, b):
            r = await replica.client.post("/auth/token", json=grant)
            assert r.status_code == 401, "the right code after five wrong guesses on any replicas must no longer work"
