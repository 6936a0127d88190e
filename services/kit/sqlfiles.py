"""Database functions kept one per file, `sql/<function>.sql` beside the code that calls them.

A migration that creates or replaces a function loads its file (`function_sql`), so the file is
the one source of the function's text; `tests/support/sqlfiles.py` checks that the migrated
database holds exactly what each file says. A migration that must keep an old body (one that a
later migration replaces) keeps it inline as a snapshot.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

KIT_SQL_DIR = Path(__file__).resolve().parent / "sql"
SERVICES_DIR = Path(__file__).resolve().parent.parent


def sql_dir(service: str) -> Path:
    """The folder of `service`'s database functions (`kit` for the kit's own)."""
    return KIT_SQL_DIR if service == "kit" else SERVICES_DIR / service / "sql"


def function_sql(service: str, name: str) -> str:
    """The `CREATE OR REPLACE FUNCTION` text of `name`, read from its file."""
    return (sql_dir(service) / f"{name}.sql").read_text(encoding="utf-8")


def create_function(service: str, name: str) -> None:
    """Create or replace `name` from its file; call from a migration's `upgrade()`."""
    op.execute(function_sql(service, name))


def create_kit_functions() -> None:
    """Create or replace every kit function (the outbox writer) in a service's database."""
    for path in sorted(KIT_SQL_DIR.glob("*.sql")):
        op.execute(path.read_text(encoding="utf-8"))
