"""Run every benchmark under bench/ (or those whose name starts with NAME), one process each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"__init__", "harness", "run", "lean_routes", "lean_security", "request_cpu"}  # request_cpu: a diagnostic


def main(prefix: str = "") -> int:
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS and p.stem.startswith(prefix))
    if not names:
        print(f"no benchmark starts with {prefix!r}", file=sys.stderr)
        return 1
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        if subprocess.call([sys.executable, "-m", f"bench.{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
