"""The transition table as docs/property.md writes it, for the tests that hold the code to it."""

from __future__ import annotations

from pathlib import Path

from services.property.domain import Action, Role, Status


def documented_decisions() -> dict[tuple[Status, Action, Role], str]:
    """docs/property.md's transition table: each documented (status, action, role) and its cell."""
    lines = (Path(__file__).parents[2] / "docs" / "property.md").read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| role | action |"))
    statuses = [Status(c.strip()) for c in lines[header].strip("|").split("|")[2:]]
    out: dict[tuple[Status, Action, Role], str] = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        role, action, *cells = (c.strip() for c in line.strip("|").split("|"))
        for status, cell in zip(statuses, cells, strict=True):
            out[status, Action(action), Role(role)] = cell
    return out


DECISIONS = documented_decisions()
