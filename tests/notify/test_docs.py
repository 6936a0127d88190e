"""docs/notify.md shows the declared table as the code declares it."""

from __future__ import annotations

from pathlib import Path

from services.notify.catalogue import (
    KINDS,
    LEFT_OUT,
    BuildingBackup,
    Kind,
    Named,
    Recipient,
    StaffHolding,
    StaffInRole,
    TicketResident,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "notify.md"


def who(recipient: Recipient) -> str:
    match recipient:
        case Named(field):
            return f"`{field}`"
        case TicketResident():
            return "the ticket's resident"
        case BuildingBackup():
            return "the building's backup steward"
        case StaffInRole(field):
            return f"staff in the role `{field}` names"
        case StaffHolding(role):
            return f"every `{role}`"


def table_row(kind: Kind) -> str:
    recipients = ", ".join(who(r) for r in kind.recipients) + (f" (not `{kind.actor}`)" if kind.actor else "")
    channels = ", ".join(sorted(c.value for c in kind.channels))
    return (
        f"| `{kind.name}` | `{kind.event_type}` | {recipients} | {kind.body.zh} / {kind.body.en} | {kind.category.value} "
        f"| {channels} | {kind.urgency.value} |"
    )


def test_the_doc_lists_every_kind_and_every_type_left_out_as_declared() -> None:
    text = DOC.read_text()
    missing = [table_row(kind) for kind in KINDS if table_row(kind) not in text]
    missing += [f"| `{etype}` | {reason} |" for etype, reason in LEFT_OUT.items() if f"| `{etype}` | {reason} |" not in text]
    assert not missing, "update docs/notify.md:\n" + "\n".join(missing)
