"""A small upstream service for the gateway's tests, served by uvicorn on a real loopback port.

It behaves the way the platform's services do (kit tokens, problem+json, 404 for another
resident's object, 403 for a staff route) and has a few knobs for the proxy's edge cases:
echoing headers and bodies, streaming, answering slowly, failing on purpose. `raw_server` is
a bare asyncio server for answers no well-behaved framework would write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from deploy.local.servers import free_port
from services.kit.app import operation_id
from services.kit.auth import CurrentPrincipal, Principal, TokenVerifier, require_roles
from services.kit.problems import NotFound, install_problem_handlers, problem_responses


class NoteIn(BaseModel):
    text: Annotated[str, Field(min_length=1, max_length=200)]
    delay_s: Annotated[float, Field(ge=0, le=5)] = 0


class NotePublic(BaseModel):
    id: str
    owner: str
    text: str


@dataclass
class UpstreamState:
    notes: dict[str, NotePublic] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    fail_next: int = 0

    def count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]


def create_upstream(jwks_url: str) -> tuple[FastAPI, UpstreamState]:
    state = UpstreamState()
    router = APIRouter(tags=["notes"])

    @router.post("/notes", status_code=201, response_model=NotePublic, responses=problem_responses())
    async def create_note(body: NoteIn, who: CurrentPrincipal) -> NotePublic:
        state.count("create_note")
        await asyncio.sleep(body.delay_s)
        note = NotePublic(id=str(uuid.uuid4()), owner=who.subject, text=body.text)
        state.notes[note.id] = note
        return note

    @router.get("/notes", response_model=list[NotePublic])
    async def list_notes(who: CurrentPrincipal) -> list[NotePublic]:
        return [n for n in state.notes.values() if n.owner == who.subject]

    @router.get("/notes/{note_id}", response_model=NotePublic, responses=problem_responses(NotFound))
    async def read_note(note_id: str, who: CurrentPrincipal) -> NotePublic:
        note = state.notes.get(note_id)
        if note is None or note.owner != who.subject:
            raise NotFound()
        return note

    @router.get("/staff/report", tags=["staff"])
    async def staff_report(who: Annotated[Principal, require_roles("steward", "property_admin")]) -> dict[str, int]:
        return {"notes": len(state.notes)}

    extra = APIRouter(tags=["probe"], include_in_schema=False)

    @extra.api_route("/echo", methods=["GET", "POST", "PUT", "DELETE"])
    async def echo(request: Request) -> dict[str, Any]:
        state.count(f"echo-{request.method}")
        if state.fail_next > 0:
            state.fail_next -= 1
            return StreamingResponse(iter([b"down"]), status_code=503)  # type: ignore[return-value]
        body = await request.body()
        return {
            "method": request.method,
            "query": request.url.query,
            "headers": dict(request.headers),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_len": len(body),
        }

    @extra.get("/stream")
    async def stream(chunks: Annotated[int, Query(ge=1, le=1000)] = 10) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(chunks):
                yield bytes([65 + i % 26]) * 16384

        return StreamingResponse(body(), media_type="application/octet-stream")

    @extra.get("/slow")
    async def slow(s: float = 1.0) -> dict[str, bool]:
        await asyncio.sleep(s)
        return {"slow": True}

    @extra.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.token_verifier = TokenVerifier(jwks_url, issuer="community-gateway", audience="community-platform")
        yield

    app = FastAPI(title="notes (test upstream)", lifespan=lifespan, generate_unique_id_function=operation_id)
    install_problem_handlers(app)
    app.include_router(router)
    app.include_router(extra)
    return app, state


@asynccontextmanager
async def serve(
    app: FastAPI, port: int | None = None, *, lifespan: bool = True, http: type[asyncio.Protocol] | str = "auto"
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a loopback port inside the running event loop; yields its URL.

    `lifespan=False` serves an app whose lifespan is already running (e.g. under run_service);
    `http` is uvicorn's HTTP protocol (the gateway's own: `gateway.limits.LimitedHttpToolsProtocol`).
    """
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on" if lifespan else "off",
            log_config=None,
            access_log=False,
            http=http,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # returns: keep the connection open


@dataclass
class RawServer:
    url: str
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[RawServer]:
    """Reads requests (Content-Length bodies only) and lets `answer` write whatever it likes."""
    port = free_port()
    server_state = RawServer(f"http://127.0.0.1:{port}")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_state.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                server_state.heads.append(head)
                server_state.bodies.append(await reader.readexactly(length) if length else b"")
                if not await answer(head, writer):
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield server_state
    finally:
        server.close()
        # Handlers still running (a silent answer) are cancelled with the server's connections.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
