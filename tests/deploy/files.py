"""The deploy files as data, and the offline checkers (`make deploy-check-tools` installs them)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
TOOLS = ROOT / ".venv" / "deploy-check" / "bin"
NAMESPACE = "community"
COMPONENTS = ("gateway", *SERVICES)


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def release_version() -> str:
    """The one version a release is: the image tag every manifest uses."""
    (job,) = of_kind("Job").values()
    image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    return str(image.rsplit(":", 1)[1])


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def tool(name: str) -> Path:
    """A checker from .venv/deploy-check; skipped when absent unless `make check-deploy` requires it."""
    path = TOOLS / name
    if not path.exists():
        message = f"{path} is missing: run `make deploy-check-tools`"
        if os.environ.get("DEPLOY_CHECK_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def lock_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a pip-compile output, by normalised name."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins
