"""The confirmation answered ahead of FastAPI (`transfers_api.DIRECT_CONFIRM`) answers every request
exactly as the documented FastAPI route does: the same steps sent to a replica with the direct
route and to one without it (`TIMEBANK_DIRECT_ROUTES=false`), on the same database, each side with
its own elder, volunteer and stranger in the same state, give the same status, media type and body
(ids, by order of appearance, the ledger's sequence numbers and times aside)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest

from services.timebank.app import create_app
from services.timebank.settings import Settings
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack
from tests.timebank.community import Community

OLD = date(1950, 3, 1)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SEQ = re.compile(r'"seq":\d+')  # the ledger's sequence, shared by the two sides
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


@pytest.fixture
async def fastapi_only(stack: TestStack, tb: RunningService) -> AsyncIterator[RunningService]:
    async with run_service(
        stack, "timebank", create_app, Settings, database_url=tb.database_url, db_pool_size=10, direct_routes=False
    ) as svc:
        yield svc


def normalised(r: httpx.Response, names: dict[str, str]) -> tuple[int, str, str]:
    text = r.text
    for name, role in names.items():
        text = text.replace(name, role)
    seen: dict[str, str] = {}
    text = _UUID.sub(lambda m: seen.setdefault(m.group(0), f"<id{len(seen)}>"), text)
    return r.status_code, r.headers.get("content-type", ""), _SEQ.sub('"seq":"<n>"', _TIME.sub("<time>", text))


async def steps(c: Community, client: httpx.AsyncClient, side: str) -> list[tuple[str, tuple[int, str, str]]]:
    """Every kind of confirmation request, in order, on one side: returns each answer, normalised."""
    elder, volunteer, stranger = f"elder-{side}", f"vol-{side}", f"stranger-{side}"
    names = {elder: "<elder>", volunteer: "<volunteer>", stranger: "<stranger>"}
    _, pending = await c.serve(elder, volunteer, 60)
    path = f"/transfers/{pending}/confirm"
    posting = str(uuid.uuid4())
    json_h = {**c.h(elder), "content-type": "application/json"}
    sent: list[tuple[str, str, str, dict[str, str], Any]] = [
        ("the volunteer who served", "POST", path, c.h(volunteer), {"id": str(uuid.uuid4())}),
        ("someone unrelated", "POST", path, c.h(stranger), {"id": str(uuid.uuid4())}),
        ("more minutes than logged", "POST", path, c.h(elder), {"id": str(uuid.uuid4()), "minutes": 1000}),
        ("no token", "POST", path, {}, {"id": str(uuid.uuid4())}),
        ("a token that is not one", "POST", path, {"authorization": "Bearer not.a.token"}, {"id": str(uuid.uuid4())}),
        ("no minutes at all", "POST", path, c.h(elder), {"id": str(uuid.uuid4()), "minutes": 0}),
        ("malformed JSON", "POST", path, json_h, b'{"id": '),
        ("JSON nested too deep to parse", "POST", path, json_h, b"[" * 100_000),
        ("a body not declared JSON", "POST", path, {**c.h(elder), "content-type": "text/plain"}, b"{}"),
        ("a query string", "POST", path + "?minutes=5", c.h(elder), {"id": str(uuid.uuid4())}),
        ("a path that is no id", "POST", "/transfers/not-an-id/confirm", c.h(elder), {"id": str(uuid.uuid4())}),
        ("an unknown pending transfer", "POST", f"/transfers/{uuid.uuid4()}/confirm", c.h(elder), {"id": str(uuid.uuid4())}),
        ("another method", "GET", path, c.h(elder), None),
        ("the confirmation", "POST", path, c.h(elder), {"id": posting, "minutes": 30}),
        ("its retry", "POST", path, c.h(elder), {"id": posting, "minutes": 30}),
        ("its id reused for other minutes", "POST", path, c.h(elder), {"id": posting, "minutes": 20}),
        ("a second confirmation", "POST", path, c.h(elder), {"id": str(uuid.uuid4())}),
        ("a charset on the JSON", "POST", path, json_h, b'{"id": "' + str(uuid.uuid4()).encode() + b'"}'),
    ]
    answers = []
    for case, method, url, headers, body in sent:
        if isinstance(body, bytes):
            r = await client.request(method, url, headers=headers, content=body)
        else:
            r = await client.request(method, url, headers=headers, json=body)
        answers.append((case, normalised(r, names)))
    return answers


async def test_the_direct_confirmation_answers_every_request_as_the_fastapi_route(
    stack: TestStack, tb: RunningService, fastapi_only: RunningService
) -> None:
    c = Community(stack, tb)
    for side in ("direct", "fastapi"):
        await c.enrol(f"elder-{side}", elder=True, birth=OLD)
        await c.enrol(f"vol-{side}", volunteer=True)
        await c.enrol(f"stranger-{side}", volunteer=True)
        await c.grant(f"elder-{side}", 100, f"elder-{side}")
    direct = await steps(c, tb.client, "direct")
    fastapi = await steps(c, fastapi_only.client, "fastapi")
    assert [case for case, _ in direct] == [case for case, _ in fastapi]
    for (case, a), (_, b) in zip(direct, fastapi, strict=True):
        assert a == b, case
    statuses = [answer[0] for _, answer in direct]
    # The answers cover what a client meets: refusals, errors of input, the posting and its retry.
    assert statuses[:4] == [403, 404, 422, 401] and statuses[-5:-1] == [201, 201, 409, 409], statuses
