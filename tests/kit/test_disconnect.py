"""A client that goes away mid-request is one INFO line, not an ERROR with a traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest
import uvicorn
from fastapi import APIRouter, Request

from deploy.local.servers import free_port
from services.kit.app import ServiceParts, create_service_app
from services.kit.settings import ServiceSettings
from tests.kit.test_backbone import wait_until
from tests.support.stack import TestStack

router = APIRouter()


@router.post("/uploads")
async def upload(request: Request) -> dict[str, int]:
    """Reads the body as it streams in, as the gateway's proxy does."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size}


class UploadSettings(ServiceSettings):
    service_name: str = "uploads"


async def test_a_client_disconnect_mid_body_is_one_info_line(stack: TestStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = UploadSettings(
        database_url=stack.database_url("postgres"), kafka_bootstrap_servers=stack.kafka_bootstrap, log_json=False
    )
    app = create_service_app(settings, ServiceParts(routers=[router]), title="uploads", description="disconnects")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="info"))
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return server.started

        await wait_until(started, timeout=10)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /uploads HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        writer.close()  # gone, 99,000 bytes short

        async def logged() -> bool:
            return any("client disconnected at POST /uploads" in r.getMessage() for r in caplog.records)

        await wait_until(logged, timeout=10)
        # A complete request still works: the server is unharmed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /uploads HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
    disconnects = [r for r in caplog.records if "client disconnected" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in disconnects] == [(logging.INFO, None)]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
