"""Replicas add no coordination cost: the same load against one and two time-bank replicas.

Issue 16's figure. This machine (2 cores) cannot show throughput scaling, so the figure is CPU time
per request summed over every serving process (user + system, from /proc), with two time-bank
replicas against one, in the same run; the target is <= 1.15 x, with no request failing.

The processes are started as the manifests start them (`deploy/k8s/*.yaml`'s command lines, the
ConfigMap's variables, cluster mode) against the bench stack's PostgreSQL, Redis and broker: three
gateways and two time-bank replicas. Both configurations put the load through two gateways, so
only the number of time-bank replicas differs:
- one replica: gateway A and gateway A' both route to time bank a;
- two replicas: gateway A routes to a, gateway B to b.
The load is two wrk processes at once (one per gateway, `BENCH_CONNECTIONS` connections in all),
first an authenticated GET (`/api/timebank/members/me`), then care confirmation (`POST
/api/timebank/transfers/{id}/confirm` of pending services prepared in bulk by SQL, each confirmed
once). The configurations take turns for `BENCH_ROUNDS` rounds; each figure is the median.

    .venv/bin/python -m bench.cluster_replicas
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import bench_stack, record
from bench.timebank_confirm import COMMUNITY, ELDERS, pending_ids, prepare
from deploy.local.servers import free_port, wait_for_port
from gateway.communities import put_community
from gateway.keys import KeyRing, rotate_keys
from gateway.migrate import upgrade_gateway_database
from gateway.schemas import CommunityPut
from services.kit.db import make_engine, make_sessionmaker
from tests.cluster.pods import config_env, manifest_command
from tests.support.stack import TestStack

CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 16))
DURATION_S = int(os.environ.get("BENCH_DURATION_S", 8))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 2))
THREADS = 2  # per wrk process
IDLE_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "cluster_replicas.lua"
# Enough pending services that no confirmation is ever repeated: rounds x configurations x the most
# this machine confirms in a run, with room.
PENDINGS = int(os.environ.get("BENCH_PENDINGS", 40_000))


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def started(component: str, name: str, env: dict[str, str], workdir: Path) -> Iterator[Server]:
    port = free_port()
    proc = subprocess.Popen(
        manifest_command(component, port), env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, 120, proc=proc)
        yield Server(name, port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wrk(url: str, env: dict[str, str], connections: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        # A request waits up to 30 s: on a loaded machine a slow answer is slow, not failed.
        ["wrk", "-t", str(THREADS), "-c", str(connections), "-d", f"{DURATION_S}s", "--timeout", "30s", "-s", str(SCRIPT), url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wrk_requests(out: str) -> tuple[int, int]:
    """(requests, failures): non-2xx/3xx answers and socket errors."""
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    failures = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:
        failures += sum(int(n) for n in errors.groups())
    return requests, failures


async def one_run(
    gateways: list[Server], serving: list[Server], mode: str, token: str, ids_file: Path, offset: int
) -> dict[str, Any]:
    """Both wrk processes at once, one per gateway; CPU per request over `serving`."""
    before = sum(s.cpu_s() for s in serving)
    procs = []
    for n, gateway in enumerate(gateways):
        env = os.environ | {
            "BENCH_MODE": mode,
            "BENCH_TOKEN": token,
            "BENCH_IDS": str(ids_file),
            "BENCH_THREAD_BASE": str(offset + n * THREADS),
            "BENCH_THREADS_ALL": str(THREADS * len(gateways) * 2 * ROUNDS),
        }
        procs.append(wrk(gateway.url, env, CONNECTIONS // len(gateways)))
    outs = [await asyncio.to_thread(p.communicate) for p in procs]
    cpu = sum(s.cpu_s() for s in serving) - before
    requests = failures = 0
    for out, _ in outs:
        got, failed = wrk_requests(out)
        if failed:
            print(out, flush=True)
        requests += got
        failures += failed
    return {"requests": requests, "failures": failures, "rps": requests / DURATION_S, "cpu_us": cpu / max(requests, 1) * 1e6}


async def gateway_database(stack: TestStack) -> str:
    url = await stack.empty_database("gateway")
    await upgrade_gateway_database(url)
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            await put_community(session, COMMUNITY, CommunityPut(name="bench", region_code="331102"))
    finally:
        await engine.dispose()
    return url


async def main() -> None:
    async with bench_stack() as stack:
        timebank_url = await prepare(stack, PENDINGS)
        gateway_url = await gateway_database(stack)
        work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
        keys = work / "keys"
        rotate_keys(keys)
        ring = KeyRing(keys)
        worker = ring.mint(subject="bench-worker", roles=["community_worker"], community=COMMUNITY, ttl_s=7200)
        # The elder's own read: a member of the bench community.
        elder = ring.mint(subject="e1", roles=["resident"], community=COMMUNITY, ttl_s=7200)
        ids_file = work / "ids"
        ids_file.write_text("".join(f"{t} {uuid.uuid4()}\n" for t in await pending_ids(timebank_url)))
        env = config_env(
            {
                "PLATFORM_MODE": "cluster",
                "KAFKA_PROFILE": "local",
                "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
                "REDIS_URL": stack.redis_url,
                "TIMEBANK_DATABASE_URL": timebank_url,
                "GATEWAY_DATABASE_URL": gateway_url,
                "GATEWAY_KEYS_DIR": str(keys),
                "GATEWAY_LOG_JSON": "false",
                # One subject and one address send all the load: above the per-user and per-IP limits
                # (600 and 1,200 a minute), which a real crowd of residents never meets together.
                "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
                "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
                # A job runs once per period across replicas however many there are, so its work is
                # no per-request cost; hourly, its runs (at start-up) stay out of the measured windows.
                "TIMEBANK_EXPIRY_JOB_EVERY_S": "3600",
            }
        )
        with started("gateway", "gateway-jwks", env | {"GATEWAY_UPSTREAMS": "{}"}, work) as jwks_gateway:
            tb_env = env | {"JWKS_URL": f"{jwks_gateway.url}/.well-known/jwks.json"}
            with started("timebank", "timebank-a", tb_env, work) as tb_a, started("timebank", "timebank-b", tb_env, work) as tb_b:

                def routed_to(tb: Server) -> dict[str, str]:
                    return env | {"GATEWAY_UPSTREAMS": f'{{"timebank": "{tb.url}"}}'}

                with (
                    started("gateway", "gateway-a", routed_to(tb_a), work) as gw_a,
                    started("gateway", "gateway-a'", routed_to(tb_a), work) as gw_a2,
                    started("gateway", "gateway-b", routed_to(tb_b), work) as gw_b,
                ):
                    configurations = {
                        "one": ([gw_a, gw_a2], [gw_a, gw_a2, tb_a]),
                        "two": ([gw_a, gw_b], [gw_a, gw_b, tb_a, tb_b]),
                    }
                    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
                    slot = 0
                    for gateways, _ in configurations.values():  # warm-up: connections, caches, plans
                        await one_run(gateways, [], "get", elder, ids_file, 0)
                    # What each process spends with no request (relay polling, job schedulers, the
                    # gateways' key and community re-reads): a second replica adds its share.
                    servers = [tb_a, tb_b, gw_a, gw_a2, gw_b]
                    idle_before = [s.cpu_s() for s in servers]
                    await asyncio.sleep(IDLE_S)
                    idle = {s.name: round((s.cpu_s() - b) / IDLE_S * 1000, 1) for s, b in zip(servers, idle_before, strict=True)}
                    for mode, token in (("get", elder), ("confirm", worker)):
                        for _ in range(ROUNDS):
                            for name, (gateways, serving) in configurations.items():
                                run = await one_run(gateways, serving, mode, token, ids_file, slot)
                                if mode == "confirm":  # each run confirms lines no other run has
                                    slot += THREADS * len(gateways)
                                results.setdefault((mode, name), []).append(run)
                                print(mode, name, run, flush=True)
        load = os.getloadavg()
    for mode in ("get", "confirm"):
        one = [r["cpu_us"] for r in results[(mode, "one")]]
        two = [r["cpu_us"] for r in results[(mode, "two")]]
        failures = sum(r["failures"] for name in ("one", "two") for r in results[(mode, name)])
        record(
            f"cluster_replicas_{mode}_cpu_per_request",
            statistics.median(two),
            "µs CPU/request",
            "one replica",
            statistics.median(one),
            higher_is_better=False,
            target="<= 1.15 x, no request failing",
            extra={
                "rps_one": round(statistics.median(r["rps"] for r in results[(mode, "one")]), 1),
                "rps_two": round(statistics.median(r["rps"] for r in results[(mode, "two")]), 1),
                "failures": failures,
                "rounds": ROUNDS,
                "elders": ELDERS,
                "idle_cpu_ms_per_s": idle,
                "load_average": [round(x, 2) for x in load],
            },
        )
        assert failures == 0, f"{failures} {mode} requests failed"


if __name__ == "__main__":
    asyncio.run(main())
