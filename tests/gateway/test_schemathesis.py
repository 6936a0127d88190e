"""Schemathesis against the merged OpenAPI, through the gateway, with a real service behind it.

The real timebank service (its migrated database, its lifespan) and the gateway each listen on a
loopback port; Schemathesis's CLI, in a subprocess, generates requests from the gateway's merged
document with a valid resident token and checks for 5xx answers and answers that break the schema.
Kept to one service and a few examples per operation, for the suite's time budget.
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
SERVICES = ["timebank", "parking", "property", "governance", "citysync", "notify"]
# Operations a generated request cannot finish: the live stream answers for as long as the token lives.
EXCLUDED = {"notify": "^/api/notify/stream$"}


@pytest.mark.parametrize("SERVICE", SERVICES)
async def test_schemathesis_finds_no_server_errors_through_the_gateway(
    stack: TestStack, gateway_template: str, SERVICE: str
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
            token = stack.token(str(uuid.uuid4()), "resident", "elder", "volunteer", community=COMMUNITY)
            proc = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{gateway_url}/openapi.json",
                "--url",
                gateway_url,
                "-H",
                f"Authorization: Bearer {token}",
                "--include-path-regex",
                f"^/api/{SERVICE}/",
                *(["--exclude-path-regex", EXCLUDED[SERVICE]] if SERVICE in EXCLUDED else []),
                "--checks",
                "not_a_server_error,response_schema_conformance",
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
