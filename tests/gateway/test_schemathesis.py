"""Schemathesis against the merged OpenAPI, through the gateway, with a real service behind it.

The real timebank service (its migrated database, its lifespan) and the gateway each listen on a
loopback port; Schemathesis's CLI, in a subprocess, generates requests from the gateway's merged
document with the token of each kind of client that uses the service (a resident, a steward, a
community worker, the city's sync client), and runs every check Schemathesis has but one: no 5xx,
every status, content type, header and body as documented, invalid data refused, and so on.
`positive_data_acceptance` is left out: a request the schema allows can still break a rule no JSON
Schema can state (a start time in the past, a cursor the service never issued, one field's bound set
by another), answered by a documented 4xx problem. A few examples per operation, for the time budget.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
import uuid
from pathlib import Path

import pytest

from tests.gateway.conftest import COMMUNITY, running_gateway
from tests.gateway.upstream import serve
from tests.support.harness import settings_for
from tests.support.stack import TestStack, new_namespace

ROOT = Path(__file__).resolve().parents[2]
# The roles of each client kind, as the gateway's logins issue them.
CLIENTS: dict[str, tuple[str, ...]] = {
    "resident": ("resident", "elder", "volunteer"),
    "steward": ("steward",),
    "worker": ("community_worker",),
    "city": ("city_sync",),
}
# Each service with the clients that use it: a resident and the staff who work it.
RUNS = [
    ("timebank", "resident"),
    ("timebank", "worker"),
    ("parking", "resident"),
    ("parking", "worker"),
    ("property", "resident"),
    ("property", "steward"),
    ("governance", "resident"),
    ("governance", "worker"),
    ("citysync", "worker"),
    ("citysync", "city"),
    ("notify", "resident"),
    ("notify", "steward"),
    ("security", "resident"),
    ("security", "worker"),
]


@pytest.mark.parametrize(("SERVICE", "CLIENT"), RUNS)
async def test_schemathesis_finds_nothing_through_the_gateway(
    stack: TestStack, gateway_template: str, SERVICE: str, CLIENT: str
) -> None:
    assert (ROOT / "services" / SERVICE / "app.py").exists(), f"services/{SERVICE} is missing"
    app_mod = importlib.import_module(f"services.{SERVICE}.app")
    settings_mod = importlib.import_module(f"services.{SERVICE}.settings")
    database = await stack.fresh_database(SERVICE)
    settings = settings_for(stack, settings_mod.Settings, database, new_namespace())
    try:
        async with (
            serve(app_mod.create_app(settings)) as service_url,
            running_gateway(
                stack,
                gateway_template,
                upstreams={SERVICE: service_url},
                rate_limit_user="100000/minute",
                rate_limit_ip="100000/minute",
            ) as gw,
            serve(gw.app, lifespan=False) as gateway_url,
        ):
            subject = "lishui-data" if CLIENT == "city" else str(uuid.uuid4())
            token = stack.token(subject, *CLIENTS[CLIENT], community=COMMUNITY)
            proc = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{gateway_url}/openapi.json",
                "--url",
                gateway_url,
                "-H",
                f"Authorization: Bearer {token}",
                "--include-path-regex",
                "^/city/v1/" if SERVICE == "citysync" and CLIENT == "city" else f"^/api/{SERVICE}/",
                # The live stream never ends by design; tests/notify and tests/gateway test it.
                "--exclude-path-regex",
                "/stream$",
                "--checks",
                "all",
                # Schema-valid requests can still break rules no JSON Schema states (a start time in
                # the past, a cursor this service did not issue, cross-field rules): a 4xx problem.
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "5",
                "--phases",
                "examples,fuzzing",
                "--generation-deterministic",
                "--request-timeout",
                "10",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(proc.communicate(), 240)
            text = output.decode(errors="replace")
            assert proc.returncode == 0, text[-6000:]
            tested = re.search(r"Tested: (\d+)", text)
            assert tested is not None and int(tested.group(1)) > 0, text[-3000:]
    finally:
        await stack.drop_database(database)
