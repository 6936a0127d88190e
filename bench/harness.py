"""What every benchmark shares: real servers, and one way to report a figure beside its baseline.

A benchmark is `bench/<service>_<what>.py` with an `async def main() -> None` that measures its
figure and a baseline in the same run on the same servers, then calls `record(...)`, which prints
both and writes `bench/results/<name>.json`. Run them with `make bench` (or `make bench NAME=prefix`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from deploy.local.servers import wait_for_port
from tests.support.stack import TestStack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat: unlike a rate,
    it does not move with whatever else the machine is running."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants (PostgreSQL's backends are children of the
    postmaster)."""
    try:
        total = cpu_seconds(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return total + sum(tree_cpu_seconds(int(child)) for child in children)


def stack_pids(stack: TestStack) -> dict[str, int]:
    """The embedded servers' processes (none when the stack points at external servers)."""
    pids = {}
    if stack.pg is not None:
        pids["postgres"] = int((stack.pg.data_dir / "postmaster.pid").read_text().split()[0])
    if stack.broker is not None and stack.broker.proc is not None:
        pids["broker"] = stack.broker.proc.pid
    return pids


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def record(
    name: str,
    value: float,
    unit: str,
    baseline_name: str,
    baseline_value: float,
    *,
    higher_is_better: bool,
    target: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ratio = value / baseline_value if baseline_value else float("nan")
    result: dict[str, Any] = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "baseline_name": baseline_name,
        "baseline_value": round(baseline_value, 3),
        "ratio": round(ratio, 3),
        "higher_is_better": higher_is_better,
    }
    if target:
        result["target"] = target
    if extra:
        result["extra"] = extra
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(
        f"{name}: {value:,.2f} {unit}  |  {baseline_name}: {baseline_value:,.2f} {unit}  |  ratio {ratio:.3f}"
        + (f"  |  target {target}" if target else "")
    )
    if extra:
        for key, val in extra.items():
            print(f"    {key}: {val}")
    return result


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan"),
    }


@asynccontextmanager
async def bench_stack() -> AsyncIterator[TestStack]:
    """The same real servers the tests use (embedded, or external through the same variables)."""
    stack = TestStack.start()
    try:
        yield stack
    finally:
        stack.stop()


@asynccontextmanager
async def serving(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 60) -> AsyncIterator[None]:
    """A server process the bench started: ready once its port answers, terminated (then killed)
    on the way out."""
    try:
        wait_for_port(port, timeout_s, proc=proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
