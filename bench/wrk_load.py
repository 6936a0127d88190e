"""Load from `wrk` (Debian's package) for `bench/http_paths.py`: one request shape per run, its Lua
script, and the figures wrk prints."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 16))


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    token: str
    body: dict[str, Any] | None = None
    # For a path with `{id}`: the ids this call may use, one per request, and the body's `id` made
    # fresh per request (a confirmation of each pending transfer, each with its own transfer id).
    ids: tuple[str, ...] = ()
    # Tokens taken in turn, one per request (several callers), instead of `token` on every request.
    tokens: tuple[str, ...] = ()
    keyed: bool = False  # a fresh `Idempotency-Key` on every request, as a client filing a form sends


def wrk_script(work: Path, req: Call) -> Path:
    script = work / f"wrk-{uuid.uuid4().hex}.lua"
    lines = [f'wrk.method = "{req.method}"', 'wrk.headers["Authorization"] = "Bearer ' + req.token + '"']
    if req.body is not None:
        lines += ['wrk.headers["Content-Type"] = "application/json"', f"wrk.body = [[{json.dumps(req.body)}]]"]
    if req.ids:
        path = "/" + req.url.split("/", 3)[3]
        head, _, tail = path.partition("{id}")
        prefix = str(uuid.uuid4())[:24]  # this run's transfer ids: a random prefix and a counter
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            "ids = {" + ",".join(f'"{i}"' for i in req.ids) + "}",
            "n = 0",
            "request = function()",
            "  n = n + 1",
            "  local id = ids[((n - 1) % #ids) + 1]",
            f"  local body = '{{\"id\":\"{prefix}' .. string.format('%012x', n) .. '\"}}'",
            f'  return wrk.format(nil, "{head}" .. id .. "{tail}", nil, body)',
            "end",
        ]
    elif req.tokens or req.keyed:
        prefix = uuid.uuid4().hex  # this run's idempotency keys: a random prefix and a counter
        lines += [
            "tokens = {" + ",".join(f'"Bearer {t}"' for t in req.tokens or (req.token,)) + "}",
            "n = 0",
            "request = function()",
            "  n = n + 1",
            '  wrk.headers["Authorization"] = tokens[((n - 1) % #tokens) + 1]',
            *([f'  wrk.headers["Idempotency-Key"] = "{prefix}-" .. n'] if req.keyed else []),
            "  return wrk.format()",
            "end",
        ]
    script.write_text("\n".join(lines) + "\n")
    return script


async def wrk(req: Call, duration_s: float, script: Path, connections: int = CONNECTIONS) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{round(duration_s)}s",
        "--latency",
        "-s",
        str(script),
        req.url,
        stdout=asyncio.subprocess.PIPE,
    )
    out = (await proc.communicate())[0].decode()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert rps and total, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": float(rps.group(1)),
        "requests": float(total.group(1)),
        "errors": float(bad.group(1)) if bad else 0.0,
        "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan"),
    }
